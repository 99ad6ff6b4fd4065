package kubeproxy

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// What IPVS mode leaves beside its iptables chains.
const (
	ipvsDummy     = "kube-ipvs0" // holds every Service address, so the node accepts them
	ipsetPrefix   = "KUBE-"      // KUBE-CLUSTER-IP, KUBE-NODE-PORT-TCP, KUBE-6-..., all of them
	ipvsFamily    = "IPVS"       // the generic netlink family of the IPVS module
	ipvsCmdFlush  = 17           // IPVS_CMD_FLUSH (linux/ip_vs.h)
	ipvsGenlVersn = 1
)

// cleanIPVS removes IPVS mode's state, as `kube-proxy --cleanup` does:
// every IPVS virtual server (a flush), the kube-ipvs0 dummy device, and
// the KUBE-* ipsets. It runs after the iptables cleanup: a set still
// referenced by a rule cannot be destroyed.
func cleanIPVS(r *Report) error {
	var errs []error
	flushed, err := flushIPVS()
	r.IPVSFlushed = flushed
	errs = append(errs, err)
	if l, err := netlink.LinkByName(ipvsDummy); err == nil {
		if _, dummy := l.(*netlink.Dummy); dummy {
			if err := netlink.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("kube-proxy cleanup: delete %s: %w", ipvsDummy, err))
			} else {
				r.Links = append(r.Links, ipvsDummy)
			}
		}
	}
	sets, err := netlink.IpsetListAll()
	if err != nil && !errors.Is(err, unix.EPROTONOSUPPORT) && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, fmt.Errorf("kube-proxy cleanup: list ipsets: %w", err))
	}
	for _, s := range sets {
		if !strings.HasPrefix(s.SetName, ipsetPrefix) {
			continue
		}
		if err := netlink.IpsetDestroy(s.SetName); err != nil {
			errs = append(errs, fmt.Errorf("kube-proxy cleanup: destroy ipset %s: %w", s.SetName, err))
			continue
		}
		r.IPSets = append(r.IPSets, s.SetName)
	}
	return errors.Join(errs...)
}

// flushIPVS removes every IPVS virtual server of the namespace; false,
// nil when the kernel has no IPVS (nothing of kube-proxy's can be there).
func flushIPVS() (bool, error) {
	fam, err := netlink.GenlFamilyGet(ipvsFamily)
	if errors.Is(err, syscall.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kube-proxy cleanup: find the IPVS netlink family: %w", err)
	}
	req := nl.NewNetlinkRequest(int(fam.ID), unix.NLM_F_ACK)
	req.AddData(&nl.Genlmsg{Command: ipvsCmdFlush, Version: ipvsGenlVersn})
	if _, err := req.Execute(unix.NETLINK_GENERIC, 0); err != nil {
		return false, fmt.Errorf("kube-proxy cleanup: flush IPVS: %w", err)
	}
	return true, nil
}
