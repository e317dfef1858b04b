package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkFiles checks that data_dir and the files holding secrets belong to
// the relay's user and are not readable by anyone else: the admin token
// and the secrets key open everything else.
func checkFiles(o *Options) []Result {
	out := []Result{checkMode(o, o.DataDir, 0o700, true)}
	for _, f := range o.KeyFiles {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		out = append(out, checkMode(o, f, 0o600, false))
	}
	return out
}

// checkMode fails when path grants group or others any access beyond
// want, or belongs to another user than UID.
func checkMode(o *Options, path string, want fs.FileMode, dir bool) Result {
	name := "permissions of " + path
	fi, err := os.Stat(path)
	if err != nil {
		return fail(name, err.Error(), "check data_dir in the configuration")
	}
	if dir && !fi.IsDir() {
		return fail(name, "not a directory", "data_dir must be a directory")
	}
	perm := fi.Mode().Perm()
	if perm&^want != 0 {
		return fail(name, fmt.Sprintf("mode %04o gives other users access", perm),
			fmt.Sprintf("chmod %04o %s", want, path))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != o.UID {
		return fail(name, fmt.Sprintf("owned by uid %d, not the relay's uid %d", st.Uid, o.UID),
			fmt.Sprintf("chown %d %s", o.UID, path))
	}
	return pass(name, fmt.Sprintf("mode %04o, owned by uid %d", perm, o.UID))
}
