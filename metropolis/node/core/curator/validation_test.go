package curator

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

func TestValidateNodeID(t *testing.T) {
	for id, ok := range map[string]bool{
		"metropolis-0123456789abcdef0123456789abcdef": true,
		"":            false,
		"metropolis-": false,
		"metropolis-0123456789ABCDEF0123456789abcdef":  false,
		"metropolis-0123456789abcdef0123456789abcde":   false,
		"metropolis-0123456789abcdef0123456789abcdef0": false,
		"monogon-0123456789abcdef0123456789abcdef":     false,
		"metropolis-0123456789abcdef0123456789abcdeg":  false,
		"metropolis-0123456789abcdef0123456789abcd/f":  false,
	} {
		if err := validateNodeID(id); (err == nil) != ok {
			t.Errorf("validateNodeID(%q) = %v, want ok=%v", id, err, ok)
		}
	}
}

func TestResolveNodeRef(t *testing.T) {
	pub := bytes.Repeat([]byte{0xab}, 32)
	id, gotPub, err := resolveNodeRef(&apb.DeleteNodeRequest{Node: &apb.DeleteNodeRequest_Pubkey{Pubkey: pub}})
	if err != nil || id != "metropolis-abababababababababababababababab" || !bytes.Equal(gotPub, pub) {
		t.Errorf("by key: %q, %x, %v", id, gotPub, err)
	}
	id, gotPub, err = resolveNodeRef(&apb.DeleteNodeRequest{Node: &apb.DeleteNodeRequest_Id{Id: "metropolis-abababababababababababababababab"}})
	if err != nil || id != "metropolis-abababababababababababababababab" || gotPub != nil {
		t.Errorf("by ID: %q, %x, %v", id, gotPub, err)
	}
	for name, req := range map[string]*apb.DeleteNodeRequest{
		"nothing":    {},
		"short key":  {Node: &apb.DeleteNodeRequest_Pubkey{Pubkey: pub[:31]}},
		"long key":   {Node: &apb.DeleteNodeRequest_Pubkey{Pubkey: append(pub, 1)}},
		"bad ID":     {Node: &apb.DeleteNodeRequest_Id{Id: "x"}},
		"empty key":  {Node: &apb.DeleteNodeRequest_Pubkey{}},
		"empty ID":   {Node: &apb.DeleteNodeRequest_Id{}},
		"ID too big": {Node: &apb.DeleteNodeRequest_Id{Id: strings.Repeat("metropolis-", 1000)}},
	} {
		if _, _, err := resolveNodeRef(req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: got %v, want InvalidArgument", name, err)
		}
	}
}

func TestValidateNodeStatus(t *testing.T) {
	for name, tc := range map[string]struct {
		st *cpb.NodeStatus
		ok bool
	}{
		"IPv4":           {&cpb.NodeStatus{ExternalAddress: "10.1.0.2"}, true},
		"IPv6":           {&cpb.NodeStatus{ExternalAddress: "2001:db8::1"}, true},
		"full":           {&cpb.NodeStatus{ExternalAddress: "10.1.0.2", RunningCurator: &cpb.NodeStatus_RunningCurator{Port: 7835}, Version: &cpb.Version{Release: "v0.1.0"}, BootId: make([]byte, 16)}, true},
		"nil":            {nil, false},
		"no address":     {&cpb.NodeStatus{}, false},
		"host name":      {&cpb.NodeStatus{ExternalAddress: "node"}, false},
		"with port":      {&cpb.NodeStatus{ExternalAddress: "10.1.0.2:80"}, false},
		"unspecified":    {&cpb.NodeStatus{ExternalAddress: "::"}, false},
		"multicast":      {&cpb.NodeStatus{ExternalAddress: "224.0.0.1"}, false},
		"zone":           {&cpb.NodeStatus{ExternalAddress: "fe80::1%eth0"}, false},
		"4in6":           {&cpb.NodeStatus{ExternalAddress: "::ffff:10.1.0.2"}, false},
		"uppercase":      {&cpb.NodeStatus{ExternalAddress: "2001:DB8::1"}, false},
		"port 0":         {&cpb.NodeStatus{ExternalAddress: "10.1.0.2", RunningCurator: &cpb.NodeStatus_RunningCurator{}}, false},
		"long version":   {&cpb.NodeStatus{ExternalAddress: "10.1.0.2", Version: &cpb.Version{Release: strings.Repeat("1", 257)}}, false},
		"boot ID length": {&cpb.NodeStatus{ExternalAddress: "10.1.0.2", BootId: make([]byte, 17)}, false},
	} {
		if err := validateNodeStatus(tc.st); (err == nil) != tc.ok {
			t.Errorf("%s: validateNodeStatus = %v, want ok=%v", name, err, tc.ok)
		}
	}
}

func TestValidateClusternet(t *testing.T) {
	key := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	external := netip.MustParseAddr("10.1.0.2")
	cn := func(key string, prefixes ...string) *cpb.NodeClusterNetworking {
		res := &cpb.NodeClusterNetworking{WireguardPubkey: key}
		for _, p := range prefixes {
			res.Prefixes = append(res.Prefixes, &cpb.NodeClusterNetworking_Prefix{Cidr: p})
		}
		return res
	}
	for name, tc := range map[string]struct {
		cn *cpb.NodeClusterNetworking
		ok bool
	}{
		"pod and own":      {cn(key, "10.192.0.0/24", "10.222.255.0/24", "10.1.0.2/32"), true},
		"no prefixes":      {cn(key), true},
		"half the network": {cn(key, "10.192.0.0/12"), true},
		"whole network":    {cn(key, "10.192.0.0/11"), false},
		"mesh address":     {cn(key, "10.223.0.1/32"), false},
		"mesh range":       {cn(key, "10.223.0.0/16"), false},
		"mesh address set": {&cpb.NodeClusterNetworking{WireguardPubkey: key, MeshAddress: "10.223.0.1"}, false},
		"nil":              {nil, false},
		"no key":           {cn("", "10.192.0.0/24"), false},
		"short key":        {cn("AAAA", "10.192.0.0/24"), false},
		"not base64":       {cn(strings.Repeat("!", 44)), false},
		"wider than pod":   {cn(key, "10.192.0.0/10"), false},
		"outside":          {cn(key, "10.224.0.0/24"), false},
		"host bits":        {cn(key, "10.192.0.1/24"), false},
		"other address":    {cn(key, "10.1.0.3/32"), false},
		"own as /24":       {cn(key, "10.1.0.0/24"), false},
		"not a prefix":     {cn(key, "10.192.0.0"), false},
		"IPv6":             {cn(key, "2001:db8::/64"), false},
	} {
		err := func() error {
			canonical, err := validateClusternet(tc.cn)
			if err != nil {
				return err
			}
			return checkClusternetPrefixes(canonical, external)
		}()
		if (err == nil) != tc.ok {
			t.Errorf("%s: got %v, want ok=%v", name, err, tc.ok)
		}
	}
}

func TestValidateLabelChanges(t *testing.T) {
	pair := func(k, v string) *apb.UpdateNodeLabelsRequest_Pair {
		return &apb.UpdateNodeLabelsRequest_Pair{Key: k, Value: v}
	}
	for name, tc := range map[string]struct {
		req *apb.UpdateNodeLabelsRequest
		ok  bool
	}{
		"empty":             {&apb.UpdateNodeLabelsRequest{}, true},
		"upsert and delete": {&apb.UpdateNodeLabelsRequest{Upsert: []*apb.UpdateNodeLabelsRequest_Pair{pair("a", "1")}, Delete: []string{"b"}}, true},
		"repeated upsert":   {&apb.UpdateNodeLabelsRequest{Upsert: []*apb.UpdateNodeLabelsRequest_Pair{pair("a", "1"), pair("a", "1")}}, false},
		"repeated delete":   {&apb.UpdateNodeLabelsRequest{Delete: []string{"b", "b"}}, false},
		"both":              {&apb.UpdateNodeLabelsRequest{Upsert: []*apb.UpdateNodeLabelsRequest_Pair{pair("a", "1")}, Delete: []string{"a"}}, false},
		"nil pair":          {&apb.UpdateNodeLabelsRequest{Upsert: []*apb.UpdateNodeLabelsRequest_Pair{nil}}, false},
		"bad delete":        {&apb.UpdateNodeLabelsRequest{Delete: []string{""}}, false},
		"too many deletes":  {&apb.UpdateNodeLabelsRequest{Delete: make([]string, node.MaxLabelsPerNode+1)}, false},
	} {
		if err := validateLabelChanges(tc.req); (err == nil) != tc.ok {
			t.Errorf("%s: got %v, want ok=%v", name, err, tc.ok)
		}
	}
}

// FuzzRegisterNodeRequest feeds arbitrary encoded requests to the
// validation of RegisterNode. It must never panic, and what it accepts must
// be safe to store.
func FuzzRegisterNodeRequest(f *testing.F) {
	for _, seed := range []*ipb.RegisterNodeRequest{
		{},
		{RegisterTicket: make([]byte, 32), JoinKey: make([]byte, 32), HaveLocalTpm: true},
		{RegisterTicket: []byte{1}, JoinKey: make([]byte, 32), Labels: &cpb.NodeLabels{Pairs: []*cpb.NodeLabels_Pair{{Key: "example.com/a", Value: "b"}}}},
		{RegisterTicket: make([]byte, 300), JoinKey: make([]byte, 31)},
		{RegisterTicket: []byte{1}, JoinKey: make([]byte, 32), Labels: &cpb.NodeLabels{Pairs: []*cpb.NodeLabels_Pair{{Key: "a"}, {Key: "a"}}}},
	} {
		data, err := proto.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req ipb.RegisterNodeRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		if err := validateRegisterNodeRequest(&req); err != nil {
			return
		}
		if len(req.JoinKey) != 32 || len(req.RegisterTicket) == 0 || len(req.RegisterTicket) > maxRegisterTicketSize {
			t.Fatalf("accepted request with join key of %d bytes and ticket of %d bytes", len(req.JoinKey), len(req.RegisterTicket))
		}
		labels := node.LabelsFromProto(req.Labels)
		if len(labels) != len(req.Labels.GetPairs()) {
			t.Fatalf("accepted duplicate labels %v", req.Labels)
		}
		if err := labels.Validate(); err != nil {
			t.Fatalf("accepted invalid labels: %v", err)
		}
		// Storing sorts the labels, which must not change them.
		if got := sortedLabels(req.Labels); len(got.Pairs) != len(labels) {
			t.Fatalf("sorting changed labels %v to %v", req.Labels, got)
		}
	})
}

// FuzzCommitNodeRequest does the same for CommitNode, against every storage
// policy.
func FuzzCommitNodeRequest(f *testing.F) {
	for _, seed := range []*ipb.CommitNodeRequest{
		{},
		{ClusterUnlockKey: make([]byte, 32), StorageSecurity: cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED},
		{StorageSecurity: cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE},
		{ClusterUnlockKey: make([]byte, 32), StorageSecurity: cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE},
		{ClusterUnlockKey: make([]byte, 33), StorageSecurity: 7},
	} {
		data, err := proto.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req ipb.CommitNodeRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		if err := validateCommitNodeRequest(&req); err != nil {
			return
		}
		insecure := req.StorageSecurity == cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE
		if insecure != (len(req.ClusterUnlockKey) == 0) || (!insecure && len(req.ClusterUnlockKey) != clusterUnlockKeySize) {
			t.Fatalf("accepted %s with a %d-byte unlock key", req.StorageSecurity, len(req.ClusterUnlockKey))
		}
		for policy := range cpb.ClusterConfiguration_StorageSecurityPolicy_name {
			// Policy checks must not panic on anything validation let
			// through.
			_ = ValidateNodeStorage(&cpb.ClusterConfiguration{StorageSecurityPolicy: cpb.ClusterConfiguration_StorageSecurityPolicy(policy)}, req.StorageSecurity)
		}
	})
}

func TestMeshAddressAssignment(t *testing.T) {
	withAddress := func(addr string, prefixes ...string) *cpb.NodeClusterNetworking {
		cn := &cpb.NodeClusterNetworking{WireguardPubkey: addr, MeshAddress: addr}
		for _, p := range prefixes {
			cn.Prefixes = append(cn.Prefixes, &cpb.NodeClusterNetworking_Prefix{Cidr: p})
		}
		return cn
	}
	for name, tc := range map[string]struct {
		others map[string]*cpb.NodeClusterNetworking
		want   string
	}{
		"first":         {nil, "10.223.0.1"},
		"next free":     {map[string]*cpb.NodeClusterNetworking{"a": withAddress("10.223.0.1"), "b": withAddress("10.223.0.2")}, "10.223.0.3"},
		"gap reused":    {map[string]*cpb.NodeClusterNetworking{"a": withAddress("10.223.0.1"), "c": withAddress("10.223.0.3")}, "10.223.0.2"},
		"no clusternet": {map[string]*cpb.NodeClusterNetworking{"a": nil}, "10.223.0.1"},
	} {
		got, err := freeMeshAddress(tc.others)
		if err != nil || got.String() != tc.want {
			t.Errorf("%s: got %v, %v; want %s", name, got, err, tc.want)
		}
	}
	all := make(map[string]*cpb.NodeClusterNetworking)
	for a := netip.MustParseAddr("10.223.0.1"); a.Less(netip.MustParseAddr("10.224.0.0")); a = a.Next() {
		all[a.String()] = withAddress(a.String())
	}
	if got, err := freeMeshAddress(all); err == nil {
		t.Errorf("with every address taken, got %s", got)
	}

	mine := &cpb.NodeClusterNetworking{WireguardPubkey: "mine", Prefixes: []*cpb.NodeClusterNetworking_Prefix{{Cidr: "10.192.1.0/24"}, {Cidr: "10.1.0.2/32"}}}
	for name, tc := range map[string]struct {
		other *cpb.NodeClusterNetworking
		ok    bool
	}{
		"disjoint":             {withAddress("10.223.0.2", "10.192.2.0/24", "10.1.0.3/32"), true},
		"same external /32":    {withAddress("10.223.0.2", "10.1.0.2/32"), true},
		"overlapping prefix":   {withAddress("10.223.0.2", "10.192.1.128/25"), false},
		"same key":             {&cpb.NodeClusterNetworking{WireguardPubkey: "mine"}, false},
		"other without config": {nil, true},
	} {
		err := checkClusternetConflicts(mine, map[string]*cpb.NodeClusterNetworking{"other": tc.other})
		if (err == nil) != tc.ok {
			t.Errorf("%s: got %v, want ok=%v", name, err, tc.ok)
		}
	}
}
