// SPDX-License-Identifier: Apache-2.0
/*
 * Socket-level load balancing for Kubernetes Services, as Cilium's socket LB
 * does it: a connect (or UDP sendmsg) to a Service frontend is rewritten to a
 * backend once, at the socket, instead of per packet; a frontend with L7
 * configuration is rewritten to the agent's outbound entry and its original
 * destination recorded (by socket cookie, then by the client's address and
 * port once sock_ops sees it), so the proxy routes by the real target.
 * getpeername and UDP replies are rewritten back to the frontend, so the
 * application only ever sees the address it dialled.
 *
 * Every program is straight-line code: no loop, two map lookups at most for a
 * pick (a retry when the generation changed under it).
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "mesh.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mesh_frontend);
	__type(value, struct mesh_service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mesh_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mesh_slot_key);
	__type(value, struct mesh_addr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mesh_slots SEC(".maps");

/* What each translated connected socket dialled, by socket cookie; the entry
 * goes when the socket is released (mesh_release). A preallocated hash: an
 * insert is a per-CPU free-list pop, where socket-local storage allocates and
 * charges memory (measured here at ~1.5 us per connect) and an LRU evicts once
 * full (~1 us). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct mesh_sock);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mesh_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mesh_revnat_key);
	__type(value, struct mesh_addr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mesh_revnat SEC(".maps");

/* Original destination by the client's address and port: what the proxy reads
 * for a connection it accepted. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mesh_addr);
	__type(value, struct mesh_addr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mesh_origdst SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MESH_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mesh_stats SEC(".maps");

/* Set by the loader: the kernel has bpf_set_retval (5.18), so a connect to a
 * Service without backends fails with ECONNREFUSED as kube-proxy's REJECT
 * makes it; older kernels give EPERM. A read-only constant, so the verifier
 * never sees the call on a kernel without the helper. */
volatile const __u32 mesh_has_set_retval = 0;

static __always_inline void fail_with(int err)
{
	if (mesh_has_set_retval)
		bpf_set_retval(err);
}

enum pick {
	PICK_NONE,    /* not a Service frontend: leave the socket alone */
	PICK_OK,
	PICK_REFUSE,  /* a frontend without backends */
};

static __always_inline void count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&mesh_stats, &stat);

	if (n)
		*n += 1;
}

static __always_inline void v4_mapped(__u32 addr[4], __u32 ip4)
{
	addr[0] = 0;
	addr[1] = 0;
	addr[2] = bpf_htonl(0x0000ffff);
	addr[3] = ip4;
}

static __always_inline int is_v4_mapped(const __u32 addr[4])
{
	return addr[0] == 0 && addr[1] == 0 && addr[2] == bpf_htonl(0x0000ffff);
}

static __always_inline int try_pick(const struct mesh_frontend *fe,
				    const struct mesh_service *svc,
				    struct mesh_addr *backend)
{
	struct mesh_slot_key key = {};
	struct mesh_addr *b;
	__u32 count = svc->count;

	if (count == 0)
		return PICK_REFUSE;
	key.frontend = *fe;
	key.version = svc->version;
	key.slot = bpf_get_prandom_u32() % count;
	b = bpf_map_lookup_elem(&mesh_slots, &key);
	if (!b)
		return PICK_NONE;
	*backend = *b;
	return PICK_OK;
}

/* Choose a backend of the frontend by weight. A miss on the slot means the
 * agent replaced the generation between our two lookups: read the service
 * again, once. */
static __always_inline int pick(const struct mesh_frontend *fe,
				struct mesh_addr *backend, __u32 *flags)
{
	struct mesh_service *svc = bpf_map_lookup_elem(&mesh_services, fe);
	int r;

	if (!svc)
		return PICK_NONE;
	*flags = svc->flags;
	r = try_pick(fe, svc, backend);
	if (r != PICK_NONE)
		return r;
	svc = bpf_map_lookup_elem(&mesh_services, fe);
	if (!svc)
		return PICK_NONE;
	*flags = svc->flags;
	r = try_pick(fe, svc, backend);
	return r == PICK_NONE ? PICK_REFUSE : r;
}

/* Remember what the socket dialled, for getpeername and replies, and (L7) for
 * sock_ops to file for the proxy: a connected socket in its own storage, an
 * unconnected UDP socket's datagram in mesh_revnat by cookie and backend. */
static __always_inline void remember(struct bpf_sock_addr *ctx,
				     const struct mesh_frontend *fe,
				     const struct mesh_addr *backend, __u32 flags,
				     int datagram)
{
	struct mesh_addr orig = {};

	__builtin_memcpy(orig.addr, fe->addr, sizeof(orig.addr));
	orig.port = fe->port;
	if (datagram) {
		struct mesh_revnat_key key = {};

		key.cookie = bpf_get_socket_cookie(ctx);
		key.backend = *backend;
		bpf_map_update_elem(&mesh_revnat, &key, &orig, BPF_ANY);
		return;
	}
	struct mesh_sock s = {};
	__u64 cookie = bpf_get_socket_cookie(ctx);

	s.frontend = orig;
	s.backend = *backend;
	s.flags = flags;
	if (bpf_map_update_elem(&mesh_socks, &cookie, &s, BPF_ANY))
		count(MESH_STAT_UNTRACKED);
}

/* The frontend a TCP or UDP socket is addressing, from the context. */
static __always_inline int frontend(struct bpf_sock_addr *ctx,
				    struct mesh_frontend *fe, int v6)
{
	__u32 proto = ctx->protocol;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 0;
	if (v6) {
		fe->addr[0] = ctx->user_ip6[0];
		fe->addr[1] = ctx->user_ip6[1];
		fe->addr[2] = ctx->user_ip6[2];
		fe->addr[3] = ctx->user_ip6[3];
	} else {
		v4_mapped(fe->addr, ctx->user_ip4);
	}
	fe->port = (__u16)ctx->user_port;
	fe->proto = (__u8)proto;
	return 1;
}

static __always_inline int translate(struct bpf_sock_addr *ctx, int v6, int udp_only)
{
	struct mesh_frontend fe = {};
	struct mesh_addr backend;
	__u32 flags = 0;
	int r;

	if (!frontend(ctx, &fe, v6))
		return 1;
	if (udp_only && fe.proto != IPPROTO_UDP)
		return 1;
	r = pick(&fe, &backend, &flags);
	if (r == PICK_NONE)
		return 1;
	if (r == PICK_REFUSE) {
		count(MESH_STAT_REFUSED);
		fail_with(-ECONNREFUSED);
		return 0;
	}
	if (!v6 && !is_v4_mapped(backend.addr)) {
		count(MESH_STAT_FAMILY);
		fail_with(-EHOSTUNREACH);
		return 0;
	}
	/* A redirect applies to TCP only; the agent never marks a UDP frontend. */
	if (v6) {
		ctx->user_ip6[0] = backend.addr[0];
		ctx->user_ip6[1] = backend.addr[1];
		ctx->user_ip6[2] = backend.addr[2];
		ctx->user_ip6[3] = backend.addr[3];
	} else {
		ctx->user_ip4 = backend.addr[3];
	}
	ctx->user_port = backend.port;
	remember(ctx, &fe, &backend, flags, udp_only);
	if (flags & MESH_SERVICE_L7)
		count(MESH_STAT_L7);
	else
		count(fe.proto == IPPROTO_TCP ? MESH_STAT_TCP : MESH_STAT_UDP);
	return 1;
}

static __always_inline int same_addr(const struct mesh_addr *a,
				     const struct mesh_addr *b)
{
	return a->addr[0] == b->addr[0] && a->addr[1] == b->addr[1] &&
	       a->addr[2] == b->addr[2] && a->addr[3] == b->addr[3] &&
	       a->port == b->port;
}

/* Rewrite a peer address (getpeername, or a reply's source) back to the
 * frontend the socket dialled: from the socket's storage when it was connected
 * to that backend, else from mesh_revnat (datagrams of an unconnected socket). */
static __always_inline int reverse(struct bpf_sock_addr *ctx, int v6)
{
	struct mesh_revnat_key key = {};
	struct mesh_addr *orig = 0;
	struct mesh_sock *s;

	if (v6) {
		key.backend.addr[0] = ctx->user_ip6[0];
		key.backend.addr[1] = ctx->user_ip6[1];
		key.backend.addr[2] = ctx->user_ip6[2];
		key.backend.addr[3] = ctx->user_ip6[3];
	} else {
		v4_mapped(key.backend.addr, ctx->user_ip4);
	}
	key.backend.port = (__u16)ctx->user_port;
	key.cookie = bpf_get_socket_cookie(ctx);
	s = bpf_map_lookup_elem(&mesh_socks, &key.cookie);
	if (s && same_addr(&s->backend, &key.backend))
		orig = &s->frontend;
	if (!orig && ctx->protocol == IPPROTO_UDP)
		orig = bpf_map_lookup_elem(&mesh_revnat, &key);
	if (!orig)
		return 1;
	if (v6) {
		ctx->user_ip6[0] = orig->addr[0];
		ctx->user_ip6[1] = orig->addr[1];
		ctx->user_ip6[2] = orig->addr[2];
		ctx->user_ip6[3] = orig->addr[3];
	} else {
		ctx->user_ip4 = orig->addr[3];
	}
	ctx->user_port = orig->port;
	count(MESH_STAT_REVERSED);
	return 1;
}

SEC("cgroup/connect4")
int mesh_connect4(struct bpf_sock_addr *ctx)
{
	return translate(ctx, 0, 0);
}

SEC("cgroup/connect6")
int mesh_connect6(struct bpf_sock_addr *ctx)
{
	return translate(ctx, 1, 0);
}

SEC("cgroup/sendmsg4")
int mesh_sendmsg4(struct bpf_sock_addr *ctx)
{
	return translate(ctx, 0, 1);
}

SEC("cgroup/sendmsg6")
int mesh_sendmsg6(struct bpf_sock_addr *ctx)
{
	return translate(ctx, 1, 1);
}

SEC("cgroup/recvmsg4")
int mesh_recvmsg4(struct bpf_sock_addr *ctx)
{
	return reverse(ctx, 0);
}

SEC("cgroup/recvmsg6")
int mesh_recvmsg6(struct bpf_sock_addr *ctx)
{
	return reverse(ctx, 1);
}

SEC("cgroup/getpeername4")
int mesh_getpeername4(struct bpf_sock_addr *ctx)
{
	return reverse(ctx, 0);
}

SEC("cgroup/getpeername6")
int mesh_getpeername6(struct bpf_sock_addr *ctx)
{
	return reverse(ctx, 1);
}

/* When a redirected socket's connect leaves (its local port now bound), file
 * its original destination under the client's address and port, which is all
 * the proxy knows of the connection it accepts. */
SEC("sockops")
int mesh_sockops(struct bpf_sock_ops *skops)
{
	struct mesh_addr client = {};
	struct mesh_sock *s;
	__u64 cookie;

	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	cookie = bpf_get_socket_cookie(skops);
	s = bpf_map_lookup_elem(&mesh_socks, &cookie);
	if (!s || !(s->flags & MESH_SERVICE_L7))
		return 1;
	if (skops->family == 2 /* AF_INET */) {
		__u32 ip4 = skops->local_ip4;

		/* Keep clang from merging this load with local_ip6[3]'s into one
		 * through a computed context pointer, which the verifier refuses. */
		asm volatile("" : "+r"(ip4));
		v4_mapped(client.addr, ip4);
	} else {
		client.addr[0] = skops->local_ip6[0];
		client.addr[1] = skops->local_ip6[1];
		client.addr[2] = skops->local_ip6[2];
		client.addr[3] = skops->local_ip6[3];
	}
	client.port = bpf_htons((__u16)skops->local_port);
	bpf_map_update_elem(&mesh_origdst, &client, &s->frontend, BPF_ANY);
	return 1;
}

/* A socket is released: forget what it dialled. */
SEC("cgroup/sock_release")
int mesh_release(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);

	bpf_map_delete_elem(&mesh_socks, &cookie);
	return 1;
}
