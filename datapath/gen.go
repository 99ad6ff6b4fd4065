package datapath

// The socket LB object and the per-packet (TC) objects for node devices and
// pod veths. All declare every
// map (bpf/lib/maps.h), so they share one set of pins. Types listed with
// -type get Go twins; btf_test.go checks them against the objects.
//go:generate go tool bpf2go -cc clang-19 -target bpfel -go-package datapath -cflags "-O2 -g -Wall -Werror" -type lb4_key -type lb6_key -type lb_service -type lb4_backend -type lb6_backend -type lb4_reverse_nat -type lb6_reverse_nat -type sock_revnat4_key -type sock_revnat4_value -type sock_revnat6_key -type sock_revnat6_value -type lb_affinity_key -type lb_affinity_val -type lb_affinity_match_key -type ct_key -type ct_entry -type lb_srcrange_key -type lb_affinity_ext_key -type host_config sock ../bpf/sock.c -- -I../bpf -I../vmlinux -mcpu=v3
//go:generate go tool bpf2go -cc clang-19 -target bpfel -go-package datapath -cflags "-O2 -g -Wall -Werror" host ../bpf/host.c -- -I../bpf -I../vmlinux -mcpu=v3
//go:generate go tool bpf2go -cc clang-19 -target bpfel -go-package datapath -cflags "-O2 -g -Wall -Werror" pod ../bpf/pod.c -- -I../bpf -I../vmlinux -mcpu=v3
