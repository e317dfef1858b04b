package bounce

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxLineLength bounds one input line of ClassifyLines. Real replies are far
// shorter; the bound keeps a stray binary file from exhausting memory.
const maxLineLength = 1 << 20

// ClassifyLines implements `outbound bounce classify`. It reads lines of the
// form
//
//	CODE<TAB>ENHANCED<TAB>TEXT
//
// where CODE and ENHANCED may be empty (a network error text such as
// "dial tcp 1.2.3.4:25: connect: connection refused" has neither), and writes
// one line
//
//	CLASS<TAB>CATEGORY<TAB>EXPLANATION
//
// per input line, in order. A line without tabs, or whose CODE column is not
// a reply code, is all TEXT; a line with one tab is CODE<TAB>TEXT. Blank
// lines are skipped and a trailing CR is ignored, so files edited on Windows
// work too.
func ClassifyLines(r io.Reader, w io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxLineLength)
	bw := bufio.NewWriter(w)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		code, enhanced, text := splitLine(line)
		v := Classify(code, enhanced, text)
		if _, err := fmt.Fprintf(bw, "%s\t%s\t%s\n", v.Class, v.Category, v.Explanation); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading line %d: %w", n+1, err)
	}
	return bw.Flush()
}

// splitLine splits an input line of ClassifyLines into its columns.
func splitLine(line string) (code int, enhanced, text string) {
	cols := strings.SplitN(line, "\t", 3)
	if len(cols) == 1 {
		return 0, "", line
	}
	c := strings.TrimSpace(cols[0])
	if c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 200 || n > 599 {
			return 0, "", line
		}
		code = n
	}
	if len(cols) == 2 {
		return code, "", cols[1]
	}
	return code, strings.TrimSpace(cols[1]), cols[2]
}
