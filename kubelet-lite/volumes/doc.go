// Package volumes holds the file-system operations behind pod volumes
// that a container could turn against the host if they were done
// naively: resolving a subPath inside a volume without following links
// out of it, publishing ConfigMap/Secret/downward API content with an
// atomic writer that trusts only its own record, and removing a pod's
// directory without crossing into mounts. The kubelet runs as root and
// every path component here may have been planted by a container, so
// each operation works on file descriptors the kernel resolved beneath
// a known base, never on a path re-read later.
package volumes
