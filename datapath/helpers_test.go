package datapath_test

import "time"

func deadline() time.Time { return time.Now().Add(2 * time.Second) }
