package logtree

import (
	"fmt"
	"testing"
	"time"
)

func BenchmarkAppendLeveled(b *testing.B) {
	lt := New()
	l := lt.MustLeveledFor("root.bench")
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		l.Info("a constant message without formatting")
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}

func BenchmarkAppendLeveledf(b *testing.B) {
	lt := New()
	l := lt.MustLeveledFor("root.bench")
	b.ReportAllocs()
	start := time.Now()
	i := 0
	for b.Loop() {
		l.Infof("formatted message %d", i)
		i++
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}

func BenchmarkAppendRaw(b *testing.B) {
	lt := New()
	w := lt.MustRawFor("root.bench")
	line := []byte("a line of output from a child process\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		w.Write(line)
	}
}

func BenchmarkReadBacklog10k(b *testing.B) {
	const dns, perDN = 10, 1000
	lt := NewWithConfig(Config{EntriesPerDN: perDN})
	for i := range dns {
		l := lt.MustLeveledFor(DN(fmt.Sprintf("root.bench.c%d", i)))
		for j := range perDN {
			l.Infof("entry %d", j)
		}
	}
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		r, err := lt.Read("root.bench", WithChildren(), WithBacklog(BacklogAllAvailable))
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Backlog) != dns*perDN {
			b.Fatalf("got %d entries, want %d", len(r.Backlog), dns*perDN)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/op")
}
