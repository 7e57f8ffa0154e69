/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0-only) */
/*
 * The map layout of lbspeaker's service dataplane: the one definition shared by the tc
 * programs (lb.bpf.c) and mirrored, field for field, by the Rust loader (src/maps.rs). A
 * test compares the two through the BTF of the compiled object, so a change here that is
 * not made there fails the build's tests.
 *
 * Addresses are 16 bytes in network order: IPv6 as is, IPv4 as the IPv4-mapped IPv6
 * address ::ffff:a.b.c.d, so one set of maps serves both families. Ports are in network
 * order. Everything else is in host order.
 */
#ifndef LBSPEAKER_LB_H
#define LBSPEAKER_LB_H

#include <linux/types.h>

/* Bumped whenever a map's layout or meaning changes; kept in the config map so that a new
 * binary refuses to adopt pinned maps of an incompatible layout. */
#define LB_LAYOUT_VERSION 1

struct lb_addr {
	__u32 w[4];
};

/* lb_services: the frontend (slot 0) and its backend slots (1..count active, then qcount
 * terminating ones that get no new flows), Cilium's lb4_key/lb6_key in one. */
struct lb_svc_key {
	struct lb_addr addr; /* the frontend address (VIP) */
	__u16 port;          /* network order */
	__u16 slot;          /* 0 = the frontend itself */
	__u8 proto;          /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 scope;          /* LB_SCOPE_EXT or LB_SCOPE_INT */
	__u8 pad[2];
};

#define LB_SCOPE_EXT 0
#define LB_SCOPE_INT 1

struct lb_svc_val {
	__u32 backend_id;    /* slot > 0: the backend in this slot */
	__u16 count;         /* slot 0: active backends (slots 1..count) */
	__u16 rev_nat_id;    /* the reverse-NAT entry of this frontend */
	__u16 flags;         /* slot 0: LB_SVC_* */
	__u16 qcount;        /* slot 0: terminating backends (slots count+1..count+qcount) */
	__u16 maglev_slot;   /* slot 0, with LB_SVC_MAGLEV: the service's table in lb_maglev */
	__u16 pad;
};

#define LB_SVC_LOADBALANCER  (1 << 0)
#define LB_SVC_EXTERNAL_IP   (1 << 1)
#define LB_SVC_CLUSTER_IP    (1 << 2)
#define LB_SVC_LOCAL         (1 << 3)  /* externalTrafficPolicy: Local */
#define LB_SVC_INT_LOCAL     (1 << 4)  /* internalTrafficPolicy: Local */
#define LB_SVC_TWO_SCOPES    (1 << 5)  /* the internal scope has its own entry */
#define LB_SVC_MAGLEV        (1 << 6)  /* backend by Maglev table, else random */

/* lb_backends: by id. */
struct lb_backend {
	struct lb_addr addr;
	__u16 port;          /* network order */
	__u8 proto;
	__u8 flags;          /* LB_BE_* */
};

#define LB_BE_LOCAL        (1 << 0)   /* runs on this node: reached without SNAT */
#define LB_BE_TERMINATING  (1 << 1)   /* informational: keeps its flows, gets no new ones */

/* lb_rev_nat: by rev_nat_id, what a reply's source becomes. */
struct lb_rev_nat {
	struct lb_addr addr;
	__u16 port;          /* network order */
	__u16 pad;
};

/* lb_ct (TCP) and lb_ct_any (UDP): one entry per direction of a translated flow, keyed by
 * the tuple as the packet arrives at the node. */
struct lb_ct_key {
	struct lb_addr saddr;
	struct lb_addr daddr;
	__u16 sport;         /* network order */
	__u16 dport;         /* network order */
	__u8 proto;
	__u8 dir;            /* LB_CT_FWD (client to frontend) or LB_CT_REV (backend to client) */
	__u8 pad[2];
};

#define LB_CT_FWD 0
#define LB_CT_REV 1

struct lb_ct_val {
	/* FWD: the source the flow is SNATed to (when LB_CT_SNAT).
	 * REV: the client's own address and port, which a reply's destination becomes. */
	struct lb_addr nat_addr;
	__u16 nat_port;      /* network order */
	__u16 rev_nat_id;
	__u32 backend_id;
	__u32 last_seen;     /* seconds of CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u32 created;       /* seconds of CLOCK_MONOTONIC */
	__u16 flags;         /* LB_CT_* */
	__u16 pad;
};

#define LB_CT_SNAT     (1 << 0)  /* the flow's source is rewritten to the node */
#define LB_CT_SEEN     (1 << 1)  /* REV: a reply was seen */
#define LB_CT_CLOSING  (1 << 2)  /* TCP FIN or RST seen in this direction */
#define LB_CT_HAIRPIN  (1 << 3)  /* a backend reaching its own service */

/* lb_config: one entry, written by the loader. */
struct lb_config {
	__u32 layout_version;
	__u32 maglev_m;          /* Maglev table size (a prime) */
	struct lb_addr snat_v4;  /* the node's IPv4 address for SNAT (IPv4-mapped), or zero */
	struct lb_addr snat_v6;  /* the node's IPv6 address for SNAT, or zero */
	__u16 snat_port_min;     /* host order, inclusive */
	__u16 snat_port_max;     /* host order, inclusive */
	__u32 flags;             /* LB_CFG_* */
};

/* lb_ifaces: per attached interface (by ifindex). */
struct lb_iface {
	__u32 flags;             /* LB_IF_* */
};

#define LB_IF_INTERNAL (1 << 0)  /* faces backends/pods: look up the internal scope */

/* Counters (per-CPU array, by index). */
#define LB_STAT_TRANSLATED   0  /* new flows translated */
#define LB_STAT_ESTABLISHED  1  /* packets of tracked flows */
#define LB_STAT_REVERSED     2  /* reply packets reverse-translated */
#define LB_STAT_ICMP         3  /* ICMP errors translated */
#define LB_STAT_NO_BACKEND   4  /* dropped: the frontend has no (local) backend */
#define LB_STAT_SNAT_FAIL    5  /* dropped: no free SNAT port */
#define LB_STAT_REDIRECT     6  /* forwarded by FIB lookup and redirect */
#define LB_STAT_FRAGMENT     7  /* IPv4 fragments seen (passed untranslated) */
#define LB_STAT_MAX          8

#endif
