package datapath

// The socket LB object. Types listed with -type get Go twins in sock_bpfel.go;
// btf_test.go checks them against the object.
//go:generate go tool bpf2go -cc clang-19 -target bpfel -go-package datapath -cflags "-O2 -g -Wall -Werror" -type lb4_key -type lb6_key -type lb_service -type lb4_backend -type lb6_backend -type lb4_reverse_nat -type lb6_reverse_nat -type sock_revnat4_key -type sock_revnat4_value -type sock_revnat6_key -type sock_revnat6_value -type lb_affinity_key -type lb_affinity_val -type lb_affinity_match_key sock ../bpf/sock.c -- -I../bpf -I../vmlinux -mcpu=v3
