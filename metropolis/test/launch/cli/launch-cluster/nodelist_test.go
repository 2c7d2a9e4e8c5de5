package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseNodeList(t *testing.T) {
	for _, tc := range []struct {
		in       string
		numNodes int
		want     []int
		wantErr  string
	}{
		{in: "", numNodes: 3, want: nil},
		{in: "0", numNodes: 1, want: []int{0}},
		{in: "1,2", numNodes: 3, want: []int{1, 2}},
		{in: "0,3-5", numNodes: 6, want: []int{0, 3, 4, 5}},
		{in: "5,1-2,2", numNodes: 6, want: []int{1, 2, 5}},
		{in: "2-2", numNodes: 3, want: []int{2}},
		{in: "007", numNodes: 8, want: []int{7}},
		{in: "3", numNodes: 3, wantErr: `"3": node 3 does not exist: the cluster has nodes 0 to 2`},
		{in: "0-3", numNodes: 3, wantErr: "node 3 does not exist"},
		{in: "3-1", numNodes: 5, wantErr: `"3-1": the range ends before it starts`},
		{in: "1,", numNodes: 3, wantErr: "empty node index"},
		{in: ",1", numNodes: 3, wantErr: "empty node index"},
		{in: "1-", numNodes: 3, wantErr: "empty node index"},
		{in: "-1", numNodes: 3, wantErr: "empty node index"},
		{in: "a", numNodes: 3, wantErr: `node index "a" is not a number`},
		{in: "+1", numNodes: 3, wantErr: `node index "+1" is not a number`},
		{in: "1 ,2", numNodes: 3, wantErr: `node index "1 " is not a number`},
		{in: "1-2-3", numNodes: 5, wantErr: `node index "2-3" is not a number`},
		{in: "99999999999999999999", numNodes: 3, wantErr: "does not exist"},
	} {
		got, err := parseNodeList(tc.in, tc.numNodes)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseNodeList(%q, %d) = %v, %v; want an error containing %q", tc.in, tc.numNodes, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseNodeList(%q, %d) = %v, %v; want %v", tc.in, tc.numNodes, got, err, tc.want)
		}
	}
}

func TestParseRoles(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cm, kc, kw string
		wantErr    string
	}{
		{name: "none"},
		{name: "controller on node 0", kc: "0"},
		{name: "controllers on members", cm: "1-2", kc: "0-2", kw: "0-3"},
		{name: "controller not a member", cm: "1", kc: "0-2", wantErr: "-kubernetes-controller: node 2 is not a consensus member"},
		{name: "bad member list", cm: "9", wantErr: "-consensus-member: \"9\": node 9 does not exist"},
		{name: "bad worker list", kw: "x", wantErr: "-kubernetes-worker:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseRoles(tc.cm, tc.kc, tc.kw, 4)
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
