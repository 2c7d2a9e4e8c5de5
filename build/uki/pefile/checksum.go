package pefile

// Checksum computes the PE image checksum of data, leaving out the checksum
// field at fieldOffset: the 16-bit one's complement sum of the file's
// little-endian words, plus the file's length. fieldOffset is even in
// every image Parse accepts.
func Checksum(data []byte, fieldOffset int) uint32 {
	var sum uint32
	for i := 0; i < len(data); i += 2 {
		if i == fieldOffset || i == fieldOffset+2 {
			continue
		}
		word := uint32(data[i])
		if i+1 < len(data) {
			word |= uint32(data[i+1]) << 8
		}
		sum += word
		sum = sum&0xffff + sum>>16
	}
	return sum + uint32(len(data))
}
