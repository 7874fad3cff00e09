/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Map layouts shared by the programs in sock_lb.c and the agent (mirrored in
 * bpf/src/layout.rs; a test there checks the sizes against these).
 *
 * Addresses are 16 bytes in network order: IPv6, or IPv4 mapped into IPv6
 * (::ffff:a.b.c.d), so one map serves both families and a dual-stack socket
 * dialling ::ffff:10.96.0.1 finds the same Service as an IPv4 one. Ports are in
 * network order, as the sock_addr context holds them.
 *
 * Changing a layout changes MESH_LAYOUT_VERSION: the agent pins maps under
 * /sys/fs/bpf/kubectl-mesh/v<version>, so a new agent never reads maps it does
 * not understand.
 */
#ifndef MESH_H
#define MESH_H

#include <linux/types.h>

#define MESH_LAYOUT_VERSION 1

/* A socket address: a backend, a Service frontend, or a client. */
struct mesh_addr {
	__u32 addr[4];
	__u16 port;
	__u16 pad;
};

/* Key of mesh_services: a Service's ClusterIP, port and protocol. */
struct mesh_frontend {
	__u32 addr[4];
	__u16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
};

/* The frontend's slot 0 is the agent's outbound entry, not a backend: record
 * the original destination for the proxy. */
#define MESH_SERVICE_L7 1u

/* Value of mesh_services. The backends of a frontend are `count` slots of
 * generation `version` in mesh_slots; the agent writes a new generation's slots
 * first, then this value (one atomic element update), then deletes the old
 * generation, so a connect never finds a frontend without backends while they
 * change. */
struct mesh_service {
	__u32 version;
	__u32 count; /* 0: the Service has no ready backend; connect is refused */
	__u32 flags;
};

/* Key of mesh_slots. A backend of weight w fills w slots, so a uniformly
 * random slot is a backend chosen by weight. */
struct mesh_slot_key {
	struct mesh_frontend frontend;
	__u32 version;
	__u32 slot;
};

/* What a connected socket dialled (value of mesh_socks, by socket cookie,
 * removed when the socket is released, so a long-lived connection never loses
 * its entry and closed ones leave none). getpeername and replies read it; for a
 * frontend with MESH_SERVICE_L7, sock_ops files the frontend under the client's
 * address for the proxy. */
struct mesh_sock {
	struct mesh_addr frontend;
	struct mesh_addr backend;
	__u32 flags;
};

/* Key of mesh_revnat: an unconnected UDP socket (by cookie) and a backend it
 * sent a datagram to (each datagram may go to another); the value is the
 * frontend, for the replies' source. */
struct mesh_revnat_key {
	__u64 cookie;
	struct mesh_addr backend;
};

/* Counters in mesh_stats (per CPU). */
enum mesh_stat {
	MESH_STAT_TCP = 0,      /* TCP connects translated to a backend */
	MESH_STAT_UDP = 1,      /* UDP connects and datagrams translated */
	MESH_STAT_L7 = 2,       /* TCP connects redirected to the agent */
	MESH_STAT_REFUSED = 3,  /* refused: the Service has no backend */
	MESH_STAT_FAMILY = 4,   /* refused: backend of another address family */
	MESH_STAT_REVERSED = 5, /* getpeername / recvmsg answers rewritten back */
	MESH_STAT_UNTRACKED = 6, /* translated, but mesh_socks was full */
	MESH_STAT_MAX = 7,
};

/* The sizes bpf/src/layout.rs mirrors (it asserts the same numbers). */
_Static_assert(sizeof(struct mesh_addr) == 20, "mesh_addr layout changed");
_Static_assert(sizeof(struct mesh_frontend) == 20, "mesh_frontend layout changed");
_Static_assert(sizeof(struct mesh_service) == 12, "mesh_service layout changed");
_Static_assert(sizeof(struct mesh_slot_key) == 28, "mesh_slot_key layout changed");
_Static_assert(sizeof(struct mesh_revnat_key) == 32, "mesh_revnat_key layout changed");
_Static_assert(sizeof(struct mesh_sock) == 44, "mesh_sock layout changed");

#endif
