package doctor

import (
	"fmt"
	"syscall"
)

// checkDisk fails when data_dir's file system has less free space than
// MinFree (or MinFreePercent of its size): a full disk makes the relay
// refuse mail with 452, and bbolt needs room to grow.
func checkDisk(o *Options) Result {
	name := "free space for " + o.DataDir
	free, total, err := o.Statfs(o.DataDir)
	if err != nil {
		return fail(name, err.Error(), "check data_dir in the configuration")
	}
	need := o.MinFree
	if o.MinFreePercent > 0 {
		need = uint64(float64(total) * o.MinFreePercent / 100)
	}
	detail := fmt.Sprintf("%s free of %s", bytesHuman(free), bytesHuman(total))
	if free < need {
		return fail(name, detail+", below "+bytesHuman(need),
			"free space on that file system or move data_dir to a larger one (the queue refuses mail when the disk is full)")
	}
	return pass(name, detail)
}

// statfs is the real file system's free space for an unprivileged user.
func statfs(path string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

func bytesHuman(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
