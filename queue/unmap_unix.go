//go:build unix

package queue

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// unmapCopied tells the kernel that this process is done with the pages
// of v, a large value read from bbolt's file mapping and copied out. The
// mapping is read-only and shared (MAP_SHARED, PROT_READ), so
// MADV_DONTNEED only drops the process's references to the pages: the
// file and the page cache keep the bytes, and a later read faults them
// back in. Without it, every body a delivery worker reads stays counted in
// the relay's resident memory (RssFile) until the kernel needs the memory
// back: with 256 KiB messages that was most of the relay's RSS. Only the
// whole pages inside v are dropped; small values are left alone.
func unmapCopied(v []byte) {
	if len(v) < 64<<10 {
		return
	}
	page := os.Getpagesize()
	if off := int(uintptr(unsafe.Pointer(unsafe.SliceData(v))) % uintptr(page)); off != 0 {
		v = v[page-off:]
	}
	if n := len(v) &^ (page - 1); n > 0 {
		_ = unix.Madvise(v[:n], unix.MADV_DONTNEED)
	}
}
