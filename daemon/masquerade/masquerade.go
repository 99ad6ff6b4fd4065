// Package masquerade gives pod traffic that leaves the cluster the
// node's address, as users of a CNI plugin's ipMasq or Cilium's
// masquerading expect: packets from the cluster's pod CIDRs to anything
// outside them are masqueraded on their way out of the node; traffic
// between pods (and to Services, which socket LB and the TC programs
// have already turned into pod addresses) keeps its source.
//
// It is one nftables table, inet hivelet-masquerade, written through
// netlink (no nft binary: the image has none) and always replaced whole
// in one transaction, so applying it again is the reconcile: whatever
// drifted is put back, and the table is never seen half-written.
package masquerade

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is hivelet's masquerade table (family inet).
const TableName = "hivelet-masquerade"

func table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
}

// Apply replaces the table with one masquerading traffic from the
// cluster CIDRs to destinations outside them, in the network namespace
// of the calling thread.
func Apply(clusterCIDRs []netip.Prefix) error {
	if len(clusterCIDRs) == 0 {
		return errors.New("masquerade: no cluster CIDR (pass --cluster-cidr)")
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("masquerade: %w", err)
	}
	// Adding an existing table is a no-op: add, delete, add again is
	// "replace" in one transaction, whether it existed or not.
	c.AddTable(table())
	c.DelTable(table())
	t := c.AddTable(table())
	ch := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	for _, p := range clusterCIDRs {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: masquerade(p.Masked())})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("masquerade: write table %s: %w", TableName, err)
	}
	return nil
}

// Remove deletes the table if it is there, touching nothing otherwise
// (a kernel without nftables has no table to remove).
func Remove() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("masquerade: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil || !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == TableName }) {
		return nil
	}
	c.DelTable(table())
	if err := c.Flush(); err != nil {
		return fmt.Errorf("masquerade: delete table %s: %w", TableName, err)
	}
	return nil
}

// masquerade is the rule for one CIDR: its family, the source inside
// it, the destination outside it.
func masquerade(p netip.Prefix) []expr.Any {
	proto, srcOff, dstOff, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(16), uint32(4)
	if p.Addr().Is6() {
		proto, srcOff, dstOff, n = unix.NFPROTO_IPV6, 8, 24, 16
	}
	m := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	network := p.Addr().AsSlice()
	inPrefix := func(off uint32, op expr.CmpOp) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: m, Xor: make([]byte, n)},
			&expr.Cmp{Op: op, Register: 1, Data: network},
		}
	}
	out := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
	out = append(out, inPrefix(srcOff, expr.CmpOpEq)...)
	out = append(out, inPrefix(dstOff, expr.CmpOpNeq)...)
	return append(out, &expr.Masq{})
}
