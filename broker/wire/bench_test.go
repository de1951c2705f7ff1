package wire

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkReadFrame compares reading a 1 MiB request body into a buffer
// that grows with the bytes (readFrame) against the old allocation of the
// announced size up front, from a reader that yields 64 KiB per Read like
// a socket does.
func BenchmarkReadFrame(b *testing.B) {
	const size = 1 << 20
	data := bytes.Repeat([]byte{7}, size)
	chunked := func() io.Reader {
		r := bytes.NewReader(data)
		return readerFunc(func(p []byte) (int, error) { return r.Read(p[:min(len(p), 64<<10)]) })
	}
	b.Run("grow", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := readFrame(chunked(), size); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("upfront", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			buf := make([]byte, size)
			if _, err := io.ReadFull(chunked(), buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
