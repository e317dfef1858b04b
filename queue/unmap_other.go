//go:build !unix

package queue

// unmapCopied does nothing where madvise is not available.
func unmapCopied([]byte) {}
