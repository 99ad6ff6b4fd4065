#!/bin/sh
# Regenerates vmlinux.h from the running kernel's BTF. Run on purpose only (`make vmlinux`): the output follows the kernel.
exec bpftool btf dump file /sys/kernel/btf/vmlinux format c > "$(dirname "$0")/vmlinux.h"
