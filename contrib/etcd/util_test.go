package dketcd_test

import "github.com/distkit/distkit/transport"

func nodeID(s string) transport.NodeID { return transport.NodeID(s) }
