package main

import (
	"testing"
	"time"
)

func TestPhases(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		name  string
		boots []boot
		total time.Duration
		each  string
	}{
		{
			name:  "firmware boot",
			boots: []boot{{6 * s, 0, 13 * s, 14 * s, 16 * s}},
			total: 16 * s,
			each:  "firmware 6.0 s, loader and kernel 7.0 s, stage-1 1.0 s, core 2.0 s",
		},
		{
			name:  "firmware boot with the kernel's messages",
			boots: []boot{{6 * s, 10 * s, 13 * s, 14 * s, 16 * s}},
			total: 16 * s,
			each:  "firmware 6.0 s, loader 4.0 s, kernel 3.0 s, stage-1 1.0 s, core 2.0 s",
		},
		{
			name:  "direct boot has no firmware phase",
			boots: []boot{{0, 0, 7 * s, 8 * s, 10 * s}},
			total: 10 * s,
			each:  "loader and kernel 7.0 s, stage-1 1.0 s, core 2.0 s",
		},
		{
			// Each phase's median is taken on its own: the slow
			// firmware of the first boot does not shift the others.
			name: "medians of three",
			boots: []boot{
				{9 * s, 0, 16 * s, 17 * s, 19 * s},
				{6 * s, 0, 14 * s, 15 * s, 17 * s},
				{6 * s, 0, 12 * s, 13 * s, 16 * s},
			},
			total: 17 * s,
			each:  "firmware 6.0 s, loader and kernel 7.0 s, stage-1 1.0 s, core 2.0 s",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total, each := medians(tc.boots)
			if total != tc.total {
				t.Errorf("total %v, want %v", total, tc.total)
			}
			if got := describePhases(each); got != tc.each {
				t.Errorf("phases\n got %s\nwant %s", got, tc.each)
			}
		})
	}
}
