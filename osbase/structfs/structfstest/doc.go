// Package structfstest helps test image writers: it builds a sample tree
// with every kind of node and corner case a writer must get right, and
// compares a tree with a directory on the host, such as an extracted cpio
// archive or a mounted EROFS image.
//
// Checking the writers through the real consumers (the cpio tool, the
// kernel's EROFS driver) rather than through a reader of our own avoids
// a writer and a reader that agree with each other but not with Linux.
package structfstest
