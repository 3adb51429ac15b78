// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Connection tracking: nothing yet. This is where it will go, so that the rest of
 * the program does not have to change shape for it:
 *
 *  - a conntrack map (BPF_MAP_TYPE_LRU_HASH) keyed by struct ct_key: the zone
 *    (a u16 the agent picks per tenant router or security-group context) and the
 *    5-tuple (addresses, ports or ICMP id, protocol), one entry per direction;
 *    its value the connection's state (new, established, related, reply), its
 *    last-seen time and, for NAT, the translated tuple;
 *  - looked up right after extract() (parse.h), to set the ct_state (and ct_zone)
 *    fields that struct flow_key will gain, so flows can match on them;
 *  - written on commit actions (a flag in struct flow_val, with the zone), for
 *    both directions of the connection, and aged out by the LRU and the agent.
 *
 * Its structs will be mirrored in tenet/datapath/kernel/layout.py and checked
 * against this program's BTF like the others.
 */
#ifndef TENET_CT_H
#define TENET_CT_H

#include "common.h"

#endif /* TENET_CT_H */
