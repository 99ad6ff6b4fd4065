// Package bpftests runs the real per-packet programs of bpf/host.c over
// crafted frames with BPF_PROG_RUN, in the PKTGEN/SETUP/CHECK style of
// Cilium's BPF unit tests: each case builds a frame (pktgen), programs
// the maps through the agent's own map writer (setup), runs the program
// and checks the verdict, every rewritten header field, every checksum
// (recomputed here in Go, never trusted from the program) and the
// counters (check). Cases run as Go subtests inside a network namespace
// the test creates.
package bpftests
