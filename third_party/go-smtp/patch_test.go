package smtp

// Tests of outbound's patch (see README.outbound.md): the patched data
// reader, line limit reader and dot writer must give exactly what the
// byte-at-a-time originals give, whatever the input and however it
// arrives in pieces.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net/textproto"
	"testing"
)

// referenceDataRead is go-smtp v0.25.1's dataReader loop, unpatched.
func referenceDataRead(r *dataReader, b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}
	const (
		stateBeginLine = iota
		stateDot
		stateDotCR
		stateCR
		stateData
		stateEOF
	)
	for n < len(b) && r.state != stateEOF {
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state = stateDotCR
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state = stateEOF
				continue
			}
			r.state = stateData
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			r.state = stateData
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}
	if r.limited {
		r.n -= int64(n)
	}
	return
}

type readFunc func(b []byte) (int, error)

func (f readFunc) Read(b []byte) (int, error) { return f(b) }

// decodeData reads input through a dataReader (patched or reference) whose
// bufio.Reader is fed in pieces of at most piece bytes and read with
// buffers of readSize, and returns what it delivered, its error, and what
// was left unread after the end of data.
func decodeData(input []byte, piece, readSize int, limit int64, reference bool) (out []byte, err error, rest []byte) {
	src := io.Reader(bytes.NewReader(input))
	if piece > 0 {
		src = &pieceReader{r: src, max: piece}
	}
	br := bufio.NewReaderSize(src, 16)
	dr := &dataReader{r: br, limited: limit > 0, n: limit}
	read := dr.Read
	if reference {
		read = func(b []byte) (int, error) { return referenceDataRead(dr, b) }
	}
	buf := make([]byte, readSize)
	for {
		n, e := read(buf)
		out = append(out, buf[:n]...)
		if e != nil {
			err = e
			break
		}
	}
	rest, _ = io.ReadAll(br)
	return out, err, rest
}

// pieceReader returns at most max bytes a Read, as a network does.
type pieceReader struct {
	r   io.Reader
	max int
}

func (p *pieceReader) Read(b []byte) (int, error) {
	if len(b) > p.max {
		b = b[:p.max]
	}
	return p.r.Read(b)
}

func checkDataReader(t *testing.T, input []byte, piece, readSize int, limit int64) {
	t.Helper()
	wantOut, wantErr, wantRest := decodeData(input, piece, readSize, limit, true)
	gotOut, gotErr, gotRest := decodeData(input, piece, readSize, limit, false)
	if !bytes.Equal(gotOut, wantOut) || !errors.Is(gotErr, wantErr) || !bytes.Equal(gotRest, wantRest) {
		t.Fatalf("input %q (pieces of %d, reads of %d, limit %d):\npatched   %q, %v, rest %q\nreference %q, %v, rest %q",
			input, piece, readSize, limit, gotOut, gotErr, gotRest, wantOut, wantErr, wantRest)
	}
}

// The inputs of a smuggling differential: every way a line may end, with
// and without a dot after it, and the end-of-data marker hidden in each.
var smugglingInputs = []string{
	"Subject: a\r\n\r\nbody\r\n.\r\n",
	"a\n.\nb\r\n.\r\n",
	"a\r.\rb\r\n.\r\n",
	"a\r\n.\nsmuggled\r\n.\r\n",
	"a\n.\r\nsmuggled\r\n.\r\n",
	"a\r\n..\r\nstuffed\r\n.\r\n",
	"a\r\n.x\r\n.\r\n",
	"a\r\n.\rx\r\n.\r\n",
	"\r\n.\r\n",
	".\r\n",
	"..\r\n.\r\n",
	"a\r\r\n.\r\n",
	"no end",
	"a\r\n.",
	"a\r\n.\r",
	"a\x00b\r\n.\r\nNEXT",
	"long line " + string(bytes.Repeat([]byte("x"), 5000)) + "\r\n.\r\nMAIL FROM:<x>\r\n",
}

func TestPatchedDataReaderMatchesOriginal(t *testing.T) {
	for _, in := range smugglingInputs {
		for _, piece := range []int{0, 1, 2, 3, 7, 64} {
			for _, readSize := range []int{1, 2, 5, 4096} {
				for _, limit := range []int64{0, 3, 10, 1 << 20} {
					checkDataReader(t, []byte(in), piece, readSize, limit)
				}
			}
		}
	}
}

func TestPatchedDataReaderRandomInputs(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	alphabet := []byte("ab.\r\n")
	for i := 0; i < 20000; i++ {
		in := make([]byte, rng.Intn(40))
		for j := range in {
			in[j] = alphabet[rng.Intn(len(alphabet))]
		}
		checkDataReader(t, in, 1+rng.Intn(8), 1+rng.Intn(12), int64(rng.Intn(3))*int64(rng.Intn(30)))
	}
}

func FuzzPatchedDataReader(f *testing.F) {
	for _, in := range smugglingInputs {
		f.Add([]byte(in), uint8(3), uint8(5), uint16(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, piece, readSize uint8, limit uint16) {
		checkDataReader(t, in, int(piece%16), 1+int(readSize%32), int64(limit))
	})
}

// referenceLineLimit is go-smtp v0.25.1's lineLimitReader check, unpatched.
func referenceLineLimit(cur *int, limit int, b []byte) error {
	for _, chr := range b {
		if chr == '\n' {
			*cur = 0
		}
		*cur++
		if *cur > limit {
			return ErrTooLongLine
		}
	}
	return nil
}

func checkLineLimit(t *testing.T, in []byte, piece, limit int) {
	t.Helper()
	r := &lineLimitReader{R: &pieceReader{r: bytes.NewReader(in), max: piece}, LineLimit: limit}
	var got []byte
	var gotErr error
	buf := make([]byte, 64)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			gotErr = err
			break
		}
	}
	// The reference sees the same pieces.
	var want []byte
	var wantErr error
	cur := 0
	for off := 0; ; off += piece {
		if cur > limit {
			wantErr = ErrTooLongLine
			break
		}
		if off >= len(in) {
			wantErr = io.EOF
			break
		}
		p := in[off:min(off+piece, len(in))]
		if err := referenceLineLimit(&cur, limit, p); err != nil {
			wantErr = err
			break
		}
		want = append(want, p...)
	}
	if !bytes.Equal(got, want) || gotErr != wantErr {
		t.Fatalf("input %q (pieces of %d, limit %d): patched %q, %v; reference %q, %v", in, piece, limit, got, gotErr, want, wantErr)
	}
}

func TestPatchedLineLimitMatchesOriginal(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	alphabet := []byte("ab\n\r")
	for i := 0; i < 20000; i++ {
		in := make([]byte, rng.Intn(60))
		for j := range in {
			in[j] = alphabet[rng.Intn(len(alphabet))]
		}
		checkLineLimit(t, in, 1+rng.Intn(10), 1+rng.Intn(8))
	}
}

// dotEncode writes in through the patched dot writer, or textproto's.
func dotEncode(in []byte, chunk int, reference bool) []byte {
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 16)
	var w io.WriteCloser = &dotWriter{w: bw}
	if reference {
		w = textproto.NewWriter(bw).DotWriter()
	}
	for off := 0; off < len(in); off += chunk {
		w.Write(in[off:min(off+chunk, len(in))])
	}
	w.Close()
	return out.Bytes()
}

func checkDotWriter(t *testing.T, in []byte, chunk int) {
	t.Helper()
	got, want := dotEncode(in, chunk, false), dotEncode(in, chunk, true)
	if !bytes.Equal(got, want) {
		t.Fatalf("input %q (writes of %d): patched %q, textproto %q", in, chunk, got, want)
	}
}

func TestPatchedDotWriterMatchesTextproto(t *testing.T) {
	for _, in := range smugglingInputs {
		for _, chunk := range []int{1, 2, 3, 1000, 100000} {
			checkDotWriter(t, []byte(in), chunk)
		}
	}
	rng := rand.New(rand.NewSource(3))
	alphabet := []byte("ab.\r\n")
	for i := 0; i < 20000; i++ {
		in := make([]byte, rng.Intn(40))
		for j := range in {
			in[j] = alphabet[rng.Intn(len(alphabet))]
		}
		checkDotWriter(t, in, 1+rng.Intn(10))
	}
}

func FuzzPatchedDotWriter(f *testing.F) {
	for _, in := range smugglingInputs {
		f.Add([]byte(in), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		checkDotWriter(t, in, 1+int(chunk))
	})
}

// A dot-encoded message read back through the patched reader is the
// original, for any message with CRLF line endings.
func TestPatchedRoundTrip(t *testing.T) {
	msg := []byte("Subject: x\r\n\r\n.leading dot\r\n..two\r\n.\r\nnot the end\r\n" + string(bytes.Repeat([]byte("y"), 9000)) + "\r\n")
	enc := dotEncode(msg, 777, false)
	out, err, _ := decodeData(enc, 100, 4096, 0, false)
	if err != io.EOF || !bytes.Equal(out, msg) {
		t.Fatalf("round trip: %v\n got %q\nwant %q", err, out, msg)
	}
}
