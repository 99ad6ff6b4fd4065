// Package plugin implements hivelet-cni's CNI operations: ADD wires a pod
// (address, veth, routes), DEL undoes it and may repeat, CHECK verifies,
// STATUS reports whether the node's agent is ready, GC drops what the
// runtime no longer knows. cmd/hivelet-cni only hands them to skel.
package plugin

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netns"

	"github.com/hivelet/hivelet/cni-plugin/config"
	"github.com/hivelet/hivelet/cni-plugin/ipam"
	"github.com/hivelet/hivelet/cni-plugin/link"
	"github.com/hivelet/hivelet/datapath/pins"
	"github.com/hivelet/hivelet/datapath/podsrc"
)

// Versions are the CNI spec versions hivelet-cni speaks.
var Versions = config.Versions

// Funcs are the operations for skel.PluginMainFuncs.
func Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: Add, Del: Del, Check: Check, Status: Status, GC: GC}
}

// Add gives the pod one address per range, a veth whose pod end is
// args.IfName, and its routes. On any error it leaves nothing behind.
func Add(args *skel.CmdArgs) error {
	c, err := config.Parse(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	res, err := add(c, args)
	if err != nil {
		return err
	}
	return types.PrintResult(res, c.CNIVersion)
}

// fault, when set (by tests), fails an ADD at a named step, to prove the
// rollback of everything done before it.
var fault func(step string) error

func inject(step string) error {
	if fault == nil {
		return nil
	}
	return fault(step)
}

func add(c *config.Conf, args *skel.CmdArgs) (_ *current.Result, err error) {
	podNS, err := openNetns(args.Netns)
	if err != nil {
		return nil, err
	}
	defer podNS.Close()
	if err := link.EnableForwarding(c.Families()); err != nil {
		return nil, err
	}
	ips, err := ipam.Allocate(c, args.ContainerID, args.IfName)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = ipam.Release(c, args.ContainerID, args.IfName)
		}
	}()
	if err := inject("allocated"); err != nil {
		return nil, err
	}
	a, err := link.Setup(podNS, args.ContainerID, args.IfName, c.MTU, ips)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = link.Teardown(args.ContainerID, args.IfName)
		}
	}()
	if err := inject("wired"); err != nil {
		return nil, err
	}
	if c.CheckSources() {
		addrs := make([]netip.Addr, 0, len(ips))
		for _, ip := range ips {
			if addr, ok := netip.AddrFromSlice(ip.Address.IP); ok {
				addrs = append(addrs, addr.Unmap())
			}
		}
		// Before the pod can send: ADD returns only once it is in place.
		if err := podsrc.Attach(a.HostIndex, addrs); err != nil {
			return nil, err
		}
	}
	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: a.Host, Mac: a.HostMAC.String()},
			{Name: a.Pod, Mac: a.PodMAC.String(), Sandbox: args.Netns},
		},
		DNS: c.DNS,
	}
	for _, ip := range ips {
		gw := link.GatewayV4
		if ip.Address.IP.To4() == nil {
			gw = link.GatewayV6
		}
		bits := 8 * len(ip.Address.IP)
		res.IPs = append(res.IPs, &current.IPConfig{
			Interface: current.Int(1),
			Address:   net.IPNet{IP: ip.Address.IP, Mask: net.CIDRMask(bits, bits)},
			Gateway:   gw,
		})
		res.Routes = append(res.Routes, &types.Route{Dst: net.IPNet{IP: make(net.IP, len(ip.Address.IP)), Mask: net.CIDRMask(0, bits)}, GW: gw})
	}
	return res, nil
}

// Del removes the pod's veth and frees its addresses. It succeeds when
// there is nothing left to remove: after a reboot, a lost netns or a
// repeated call.
func Del(args *skel.CmdArgs) error {
	c, err := config.Parse(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	// Unwire first: an address is free only once no interface holds it.
	if err := link.Teardown(args.ContainerID, args.IfName); err != nil {
		return err
	}
	return ipam.Release(c, args.ContainerID, args.IfName)
}

// Check verifies the attachment against the prevResult the runtime
// passes: addresses still held and configured, veth up, routes present.
func Check(args *skel.CmdArgs) error {
	c, err := config.Parse(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "parse prevResult: "+err.Error(), "")
	}
	if c.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "CHECK needs the prevResult of ADD", "")
	}
	prev, err := current.NewResultFromResult(c.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "convert prevResult: "+err.Error(), "")
	}
	held, err := ipam.Held(c, args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	var want []net.IP
	for _, ip := range prev.IPs {
		if !containsIP(held, ip.Address.IP) {
			return fmt.Errorf("check: address %s is no longer allocated to %s/%s", ip.Address.IP, args.ContainerID, args.IfName)
		}
		want = append(want, ip.Address.IP)
	}
	podNS, err := openNetns(args.Netns)
	if err != nil {
		return err
	}
	defer podNS.Close()
	if err := link.Check(podNS, args.ContainerID, args.IfName, want); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	return nil
}

// Status is ready when the node's agent has its datapath loaded (unless
// the network is standalone) and the address store is usable.
func Status(args *skel.CmdArgs) error {
	c, err := config.Parse(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if !c.Standalone {
		if err := pins.AgentLoaded(c.BPFFS); err != nil {
			return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
		}
	}
	if err := ipam.Ready(c); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
	}
	return nil
}

// GC frees addresses and removes host ends of attachments the runtime
// does not list as valid.
func GC(args *skel.CmdArgs) error {
	c, err := config.Parse(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	var keep [][2]string
	for _, a := range c.ValidAttachments {
		keep = append(keep, [2]string{a.ContainerID, a.IfName})
	}
	orphans, err := link.Orphans(keep)
	if err != nil {
		return types.NewError(types.ErrIOFailure, "gc: "+err.Error(), "")
	}
	var errs []error
	for _, name := range orphans {
		if err := link.Delete(name); err != nil {
			errs = append(errs, fmt.Errorf("delete stale %s: %w", name, err))
		}
	}
	if err := ipam.GC(c, c.ValidAttachments); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return types.NewError(types.ErrIOFailure, "gc: "+err.Error(), "")
	}
	return nil
}

func openNetns(path string) (netns.NsHandle, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, types.NewError(types.ErrUnknownContainer, fmt.Sprintf("network namespace %s does not exist", path),
				"the sandbox is gone; the runtime should not retry ADD")
		}
		return 0, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("open network namespace %q: %v", path, err), "")
	}
	return h, nil
}

func containsIP(ips []net.IP, ip net.IP) bool {
	for _, x := range ips {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}
