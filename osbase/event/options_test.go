package event

import "testing"

func TestParseGetOptions(t *testing.T) {
	positive := Filter(func(i int) bool { return i > 0 })
	even := Filter(func(i int) bool { return i%2 == 0 })
	for _, tc := range []struct {
		name        string
		opts        []GetOption[int]
		accepted    []int
		rejected    []int
		backlogOnly bool
	}{
		{name: "no options accept everything", accepted: []int{-1, 0, 1}},
		{name: "one filter", opts: []GetOption[int]{positive}, accepted: []int{1, 2}, rejected: []int{0, -2}},
		{name: "filters combine", opts: []GetOption[int]{positive, even}, accepted: []int{2}, rejected: []int{1, 0, -2}},
		{name: "backlog only", opts: []GetOption[int]{BacklogOnly[int]()}, accepted: []int{0}, backlogOnly: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ParseGetOptions(tc.opts)
			for _, v := range tc.accepted {
				if !o.Accept(v) {
					t.Errorf("Accept(%d) = false, want true", v)
				}
			}
			for _, v := range tc.rejected {
				if o.Accept(v) {
					t.Errorf("Accept(%d) = true, want false", v)
				}
			}
			if o.BacklogOnly() != tc.backlogOnly {
				t.Errorf("BacklogOnly() = %v, want %v", o.BacklogOnly(), tc.backlogOnly)
			}
		})
	}
}
