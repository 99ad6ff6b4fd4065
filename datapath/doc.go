// Package datapath loads, pins and attaches hivelet's BPF programs and is
// the only package that talks to BPF maps.
//
// The socket LB object (bpf/sock.c) is compiled by bpf2go into
// sock_bpfel.{go,o}; the Go twins of its map structs come from the same run
// and are checked against the object's BTF in btf_test.go. Everything above
// this package speaks net/netip; network byte order exists only in the
// conversions in lbmap_bpf.go.
package datapath
