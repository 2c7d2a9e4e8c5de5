package crypt

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// KeySize is the size in bytes of the data key and of each of its halves,
// the node unlock key and the cluster unlock key.
const KeySize = 32

// DataKey returns the key of the data partition: the node unlock key XOR
// the cluster unlock key. Neither half alone tells anything about it.
func DataKey(nodeUnlockKey, clusterUnlockKey []byte) ([]byte, error) {
	if len(nodeUnlockKey) != KeySize || len(clusterUnlockKey) != KeySize {
		return nil, fmt.Errorf("crypt: node unlock key has %d bytes and cluster unlock key %d, both must have %d", len(nodeUnlockKey), len(clusterUnlockKey), KeySize)
	}
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = nodeUnlockKey[i] ^ clusterUnlockKey[i]
	}
	return key, nil
}

// Uses of the data key, each with its own derived key.
const (
	purposeKeyCheck = "metropolis data partition v1: key check"
	purposeXTS      = "metropolis data partition v1: aes-xts-plain64"
	purposeGCM      = "metropolis data partition v1: gcm(aes)"
)

// deriveKey derives a key of n bytes for a purpose from the data key.
func deriveKey(dataKey []byte, purpose string, n int) []byte {
	k, err := hkdf.Key(sha256.New, dataKey, nil, purpose, n)
	if err != nil {
		// HKDF-SHA256 fails only for keys longer than 255*32 bytes.
		panic(fmt.Sprintf("crypt: deriving a %d-byte key: %v", n, err))
	}
	return k
}
