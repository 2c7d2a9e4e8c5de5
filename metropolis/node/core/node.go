package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node/core/cluster"
	"metropolis.dev/metropolis/node/core/clusternet"
	"metropolis.dev/metropolis/node/core/devmgr"
	"metropolis.dev/metropolis/node/core/localstorage"
	"metropolis.dev/metropolis/node/core/mgmt"
	"metropolis.dev/metropolis/node/core/network"
	"metropolis.dev/metropolis/node/core/nodenames"
	"metropolis.dev/metropolis/node/core/nodeparams"
	"metropolis.dev/metropolis/node/core/roleserve"
	timesvc "metropolis.dev/metropolis/node/core/time"
	"metropolis.dev/metropolis/proto/api"
	"metropolis.dev/metropolis/version"
	"metropolis.dev/osbase/bringup"
	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/event/memory"
	netpb "metropolis.dev/osbase/net/proto"
	"metropolis.dev/osbase/supervisor"
)

// dhcpVendorClass identifies the node to DHCP servers (option 60), so that
// they can tell nodes from other machines.
const dhcpVendorClass = "dev.monogon.metropolis.node.v1"

// preloadModules are the modules of the node's image that the kernel asks
// for by name rather than by device, which it cannot load itself (see
// devmgr): the filesystems of the ESP (with the character sets vfat mounts
// with by default) and of the data partition, the device-mapper targets
// and ciphers of the data partition, the nftables expressions of the
// firewall, and WireGuard, whose interface the mesh creates by type.
var preloadModules = []string{
	"vfat", "nls_ascii", "nls_cp437", "xfs",
	"dm_crypt", "dm_integrity", "xts", "aesni_intel",
	"nf_tables", "nft_ct", "nft_chain_nat", "nft_nat", "nft_masq", "nft_redir",
	"nft_reject_inet", "nft_fib_inet", "nft_limit", "nft_numgen", "nft_hash",
	"wireguard",
}

// node holds what the node's runnables share.
type node struct {
	// storage is the state of the data partition.
	storage memory.Value[*storageStatus]
}

// run is the root runnable. It reports the boot, starts the device
// manager, and once the hardware present at boot has its drivers, mounts
// the ESP, reads the node's parameters and starts the node's services.
func (n *node) run(ctx context.Context) error {
	log := supervisor.Logger(ctx)
	log.Info(banner(version.Version, gatherFacts()))
	knobs, err := readKnobs(cmdlinePath)
	if err != nil {
		log.Errorf("Ignoring the node's kernel command line parameters: %v", err)
	}

	dm := &devmgr.Service{Preload: preloadModules}
	if err := supervisor.Run(ctx, "devmgr", dm.Run); err != nil {
		return err
	}
	if err := waitColdplugged(ctx, dm.State()); err != nil {
		return err
	}

	root, err := localstorage.New("/")
	if err != nil {
		return err
	}
	if err := root.Start(ctx); err != nil {
		return err
	}
	params, paramsErr := nodeparams.Read(nodeparams.FWCfgPath, root.ESP.Metropolis.NodeParameters.FullPath())
	switch {
	case paramsErr == nil:
		log.Infof("Node parameters from %s: %s", params.Path, describeParams(params))
	case errors.Is(paramsErr, nodeparams.ErrAbsent):
		log.Info("The node has no parameters; it needs them only before its data partition exists")
	default:
		log.Errorf("Invalid node parameters: %v", paramsErr)
	}
	netConfig, err := networkConfig(root, params)
	if err != nil {
		log.Errorf("Network configuration: %v", err)
	}

	netSvc := network.New(network.Config{StaticConfig: netConfig, DHCPVendorClass: dhcpVendorClass})
	clock := timesvc.New(timesvc.Config{Network: netSvc.Status()})
	t, err := openTPM()
	if err != nil {
		log.Errorf("Running without the TPM: %v", err)
	}
	mesh := &clusternet.Service{
		PrivateKey: &root.Data.Kubernetes.ClusterNetworking.PrivateKey,
		Network:    netSvc.Status(),
	}
	roles := roleserve.New(roleserve.Config{
		Storage:        root,
		Network:        netSvc.Status(),
		NodeManagement: &mgmt.Service{LogTree: supervisor.LogTree(ctx), Power: power{}, Mesh: mesh},
		NodeNames:      nodenames.New(netSvc),
		Clusternet:     mesh,
	})
	var parameters *api.NodeParameters
	if params != nil {
		parameters = params.Parameters
	}
	enrol := &enrolment{
		manager: cluster.New(cluster.Config{
			Storage:    root,
			Data:       &reportedDataPartition{data: &root.Data, status: &n.storage},
			TPM:        t,
			Parameters: parameters,
			RoleServer: roles,
		}),
		storage: &n.storage,
	}
	sr := &statusReporter{network: netSvc.Status(), clock: clock.Status(), storage: &n.storage}
	runnables := map[string]supervisor.Runnable{
		"network": netSvc.Run,
		"time":    clock.Run,
		"role":    roles.Run,
		"cluster": enrol.run,
		"status":  sr.run,
	}
	if knobs.dnsCheck != "" {
		runnables["dnscheck"] = dnsCheck(knobs.dnsCheck, netSvc.Status())
	}
	for name, r := range runnables {
		if err := supervisor.Run(ctx, name, r); err != nil {
			return err
		}
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	<-ctx.Done()
	return ctx.Err()
}

// waitColdplugged returns once the device manager has handled every device
// present at boot.
func waitColdplugged(ctx context.Context, state event.Watchable[*devmgr.State]) error {
	w := state.Watch()
	defer w.Close()
	_, err := w.Get(ctx, event.Filter(func(s *devmgr.State) bool { return s.Coldplugged }))
	return err
}

// describeParams says what parameters tell the node to do.
func describeParams(p *nodeparams.Loaded) string {
	switch {
	case p.Parameters.GetClusterBootstrap() != nil:
		return "bootstrap a new cluster"
	case p.Parameters.GetClusterRegister() != nil:
		return fmt.Sprintf("register into the cluster of %d known nodes", len(p.Parameters.GetClusterRegister().GetClusterDirectory().GetNodes()))
	}
	return "nothing"
}

// networkConfig returns the node's static network configuration, or nil
// for DHCP. Parameters, when the node has them, decide, and their choice
// is kept on the ESP for the boots without them. An error is a problem
// worth reporting, not a reason to stop: the configuration returned with
// it is still the one to use.
func networkConfig(root *localstorage.Root, params *nodeparams.Loaded) (*netpb.Net, error) {
	file := &root.ESP.Metropolis.NetworkConfiguration
	if params != nil {
		cfg := params.Parameters.GetNetworkConfig()
		if cfg == nil {
			if err := file.Remove(); err != nil {
				return nil, fmt.Errorf("using DHCP as the parameters say, but the configuration kept from before stays: %w", err)
			}
			return nil, nil
		}
		b, err := proto.Marshal(cfg)
		if err == nil {
			err = file.Write(b, 0o600)
		}
		if err != nil {
			return cfg, fmt.Errorf("using the parameters' configuration, but cannot keep it for later boots: %w", err)
		}
		return cfg, nil
	}
	b, err := file.Read()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("using DHCP: reading the kept configuration: %w", err)
	}
	var cfg netpb.Net
	if err := proto.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("using DHCP: the kept configuration %s is damaged: %w", file.FullPath(), err)
	}
	return &cfg, nil
}

// power restarts or turns off the node for the management API, through
// the node's init.
type power struct{}

func (power) Reboot() error   { return bringup.Reboot() }
func (power) PowerOff() error { return bringup.PowerOff() }
