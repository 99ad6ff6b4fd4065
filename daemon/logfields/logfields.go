// Package logfields holds the structured-log keys every hivelet component
// uses, so one key never gets two spellings.
package logfields

const (
	Service       = "service"
	EndpointSlice = "endpointSlice"
	Frontend      = "frontend"
	Backend       = "backend"
	File          = "file"
	Dir           = "dir"
	Error         = "error"
	Full          = "full"
	Duration      = "duration"
	Services      = "services"
	Backends      = "backends"
	Upserts       = "upserts"
	Deletes       = "deletes"
	BPFFS         = "bpffs"
	Cgroup        = "cgroup"
	Reason        = "reason"
	Retry         = "retryIn"
	Count         = "count"
	Frontends     = "frontends"
	Owner         = "owner"
	PreviousOwner = "previousOwner"
	Object        = "object"
	Addr          = "addr"
	Nodes         = "nodes"
	Added         = "added"
	Removed       = "removed"
)
