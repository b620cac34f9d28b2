package cache

import (
	"io/fs"
	"syscall"
)

// sysStamp returns the change time and inode number of fi.
func sysStamp(fi fs.FileInfo) (changeNS int64, inode uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ctim.Sec*1e9 + st.Ctim.Nsec, st.Ino
	}
	return 0, 0
}
