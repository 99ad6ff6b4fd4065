// Package podsrc is the source-address check on pod veths, apart from
// the rest of the datapath: hivelet-cni attaches it for every pod, and a
// CNI plugin runs once per pod, so it carries only this program.
package podsrc

//go:generate go tool bpf2go -cc clang-19 -target bpfel -go-package podsrc -cflags "-O2 -g -Wall -Werror" podsrc ../../bpf/podsrc.c -- -I../../bpf -I../../vmlinux -mcpu=v3

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Attach puts the source-address check on the host end of a pod
// veth (ifindex): the pod may send IP only from addrs, at most one per
// family (IPv6 link-local and unspecified sources aside). The program is
// loaded with the addresses as constants and attached first in the
// veth's TCX ingress chain, ahead of the pod LB programs, with no link:
// nothing to pin or remove, it goes with the veth.
func Attach(ifindex int, addrs []netip.Addr) error {
	spec, err := loadPodsrc()
	if err != nil {
		return fmt.Errorf("load the pod source check: %w", err)
	}
	var v4 [4]byte
	var v6 [16]byte
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			v4 = a.As4()
		} else {
			v6 = a.As16()
		}
	}
	if err := spec.Variables[podsrcVarPodIp4].Set(v4); err != nil {
		return fmt.Errorf("load the pod source check: %w", err)
	}
	if err := spec.Variables[podsrcVarPodIp6].Set(v6); err != nil {
		return fmt.Errorf("load the pod source check: %w", err)
	}
	var objs podsrcPrograms
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return fmt.Errorf("load the pod source check: %w", err)
	}
	// The attachment holds its own reference to the program.
	defer objs.Close()
	err = link.RawAttachProgram(link.RawAttachProgramOptions{Target: ifindex, Program: objs.HlPodSource,
		Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
	if err != nil {
		return fmt.Errorf("attach the pod source check to ifindex %d: %w (needs Linux 6.6 or later)", ifindex, err)
	}
	return nil
}
