// sessionlb TCP handoff, backend side: a small N-API addon (C, node_api.h only) around Linux
// TCP_REPAIR (the kernel interface CRIU uses to checkpoint and restore live TCP connections).
// Needs CAP_NET_ADMIN in the socket's network namespace. docs/handoff.md describes its use.
//
// restore(params) -> fd
//     Creates an ESTABLISHED TCP socket for a connection whose handshake happened elsewhere, without
//     sending anything: socket, TCP_REPAIR on (the kernel then marks it SK_FORCE_REUSE, so it may bind
//     VIP:port while a server listens on *:port or VIP:port), IP_FREEBIND, bind(vip:vipPort),
//     TCP_QUEUE_SEQ of the send queue (sndNxt) and of the receive queue (rcvNxt), connect(client)
//     (no SYN in repair mode), TCP_REPAIR_OPTIONS (MSS, window shifts snd | rcv << 16, SACK_PERM,
//     TIMESTAMP, as flagged), TCP_TIMESTAMP (tsval: the TSval the next segment carries, rounded up to
//     even: since Linux 6.7 an odd value selects the microsecond TSval clock), the held
//     bytes written into the receive queue, TCP_REPAIR_WINDOW, then TCP_REPAIR_OFF_NO_WP (repair
//     off without a window probe). The fd is blocking-mode agnostic (left blocking; libuv sets
//     O_NONBLOCK when Node wraps it).
//     params: { client: 'a.b.c.d', clientPort, vip: 'a.b.c.d', vipPort, sndNxt, rcvNxt, sndWnd,
//               rcvWnd, mss, flags (1 wscale, 2 SACK, 4 timestamps), sndWscale, rcvWscale, tsval,
//               data?: Uint8Array }
//     On failure the half-made socket is closed while still in repair mode (nothing goes on the
//     wire) and an Error is thrown with .errno (number), .step (the failing call) and .code
//     ('EADDRNOTAVAIL', ..., or 'E<n>').
// dump(fd, close?) -> state
//     Reads a live socket's state under TCP_REPAIR: { local, localPort, remote, remotePort, state,
//     sndSeq (send-queue TCP_QUEUE_SEQ: write_seq), rcvSeq (receive-queue TCP_QUEUE_SEQ: rcv_nxt),
//     outq, inq (bytes queued), data (a copy of the receive queue, peeked), mss (TCP_MAXSEG),
//     sndMss, advMss, options (tcpi_options), sndWscale, rcvWscale, tsval (TCP_TIMESTAMP: the
//     TSval now; since Linux 6.7 its low bit is the socket's microsecond-clock flag), window { sndWl1, sndWnd, maxWindow, rcvWnd, rcvWup } }. With close = true the fd
//     is closed while in repair mode (the peer sees nothing: no FIN, no RST); otherwise repair is
//     turned off again without a window probe.
//
// The agent -> server process path (docs/handoff.md "The agent, step by step", steps 3 and 4):
// dgramBind(path) -> fd          a non-blocking Unix datagram socket bound at path (the receiver)
// dgramConnect(path) -> fd       a non-blocking Unix datagram socket connected to path (the sender)
// sendFds(sock, fds, close?) -> n
//     Sends the descriptors fds (an array) over sock with SCM_RIGHTS, up to SCM_MAX_FD (253) per
//     datagram (payload: one byte). Returns how many went (whole datagrams, in order); stops early
//     when the receiver's queue is full (EAGAIN). With close = true the sender's copies of those
//     sent are closed (the in-flight reference keeps each socket alive: no FIN). Throws only if the
//     first datagram fails with anything but EAGAIN (ECONNREFUSED: the receiver is gone).
// recvFds(sock, max) -> fds
//     Reads queued datagrams (MSG_DONTWAIT, MSG_CMSG_CLOEXEC) until none is left or max
//     descriptors have come, and returns the descriptors they carried, in order.
// pollStart(fd, events, callback) -> handle; pollStop(handle)
//     libuv uv_poll on fd (events: 1 readable, 2 writable) calling callback(events or a negative
//     libuv status) on the JS thread, as in native/tap.c.
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/sockios.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/inet_diag.h>

#ifndef TCP_REPAIR_ON
#define TCP_REPAIR_ON 1
#endif
#ifndef TCP_REPAIR_OFF_NO_WP
#define TCP_REPAIR_OFF_NO_WP -1
#endif
#ifndef TCPOPT_MAXSEG
#define TCPOPT_MAXSEG 2
#endif
#ifndef TCPOPT_WINDOW
#define TCPOPT_WINDOW 3
#endif
#ifndef TCPOPT_SACK_PERMITTED
#define TCPOPT_SACK_PERMITTED 4
#endif
#ifndef TCPOPT_TIMESTAMP
#define TCPOPT_TIMESTAMP 8
#endif

#define FLAG_WSCALE 1
#define FLAG_SACK 2
#define FLAG_TS 4
#define MAX_DATA (1 << 20)

#define CHECK(call)                                                           \
  do {                                                                        \
    if ((call) != napi_ok) {                                                  \
      napi_throw_error(env, "ESLBNAPI", "sessionlb repair: N-API call failed"); \
      return NULL;                                                            \
    }                                                                         \
  } while (0)

static const char *errno_name(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ENOMEM: return "ENOMEM";
    case ENOBUFS: return "ENOBUFS";
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EISCONN: return "EISCONN";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    default: return NULL;
  }
}

// Throws Error("<fn>: <step>: <strerror>") with .code, .errno and .step.
static napi_value throw_step(napi_env env, const char *fn, const char *step, int err) {
  char msg[256], code[32];
  snprintf(msg, sizeof msg, "%s: %s: %s", fn, step, strerror(err));
  const char *name = errno_name(err);
  if (name) snprintf(code, sizeof code, "%s", name);
  else snprintf(code, sizeof code, "E%d", err);
  napi_value m, c, e, v;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m) != napi_ok ||
      napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &c) != napi_ok ||
      napi_create_error(env, c, m, &e) != napi_ok) {
    napi_throw_error(env, code, msg);
    return NULL;
  }
  if (napi_create_int32(env, err, &v) == napi_ok) napi_set_named_property(env, e, "errno", v);
  if (napi_create_string_utf8(env, step, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, e, "step", v);
  napi_throw(env, e);
  return NULL;
}

static int prop_u32(napi_env env, napi_value obj, const char *name, uint32_t *out, int required) {
  bool has = false;
  napi_value v;
  napi_valuetype t;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok) return -1;
  if (!has) return required ? -1 : 0;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return -1;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_undefined && !required) return 0;
  if (t != napi_number) return -1;
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return -1;
  if (!(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) return -1;
  *out = (uint32_t)d;
  return 0;
}

static int prop_ipv4(napi_env env, napi_value obj, const char *name, struct in_addr *out) {
  napi_value v;
  char s[64];
  size_t n;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return -1;
  if (napi_get_value_string_utf8(env, v, s, sizeof s, &n) != napi_ok) return -1;
  return inet_pton(AF_INET, s, out) == 1 ? 0 : -1;
}

static int set_int(int fd, int level, int opt, int val) {
  return setsockopt(fd, level, opt, &val, sizeof val);
}

// TIME_WAIT sockets removed so that a client reusing its port could be restored (restore, below).
static uint64_t time_wait_reclaimed = 0;

// One NETLINK_SOCK_DIAG request for the TCP socket local:lport <-> remote:rport (all in network
// order): SOCK_DIAG_BY_FAMILY answers its state, SOCK_DESTROY removes it. Returns the state (>= 0)
// or 0 for SOCK_DESTROY's success, or -errno.
static int sock_diag(int type, struct in_addr local, uint16_t lport, struct in_addr remote, uint16_t rport) {
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return -errno;
  struct {
    struct nlmsghdr h;
    struct inet_diag_req_v2 r;
  } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = sizeof req;
  req.h.nlmsg_type = (uint16_t)type;
  req.h.nlmsg_flags = NLM_F_REQUEST | (type == SOCK_DESTROY ? NLM_F_ACK : 0);
  req.h.nlmsg_seq = 1;
  req.r.sdiag_family = AF_INET;
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = ~0u;
  req.r.id.idiag_sport = lport;
  req.r.id.idiag_dport = rport;
  req.r.id.idiag_src[0] = local.s_addr;
  req.r.id.idiag_dst[0] = remote.s_addr;
  req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  int rc = -EPROTO;
  if (sendto(nl, &req, sizeof req, 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
    rc = -errno;
  } else {
    union {
      char b[1024];
      struct nlmsghdr h;
    } buf;
    ssize_t n = recv(nl, buf.b, sizeof buf.b, 0);
    if (n < 0) {
      rc = -errno;
    } else if ((size_t)n >= sizeof(struct nlmsghdr) && buf.h.nlmsg_type == NLMSG_ERROR) {
      rc = ((struct nlmsgerr *)NLMSG_DATA(&buf.h))->error;
    } else if ((size_t)n >= NLMSG_LENGTH(sizeof(struct inet_diag_msg)) && buf.h.nlmsg_type == SOCK_DIAG_BY_FAMILY) {
      rc = ((struct inet_diag_msg *)NLMSG_DATA(&buf.h))->idiag_state;
    }
  }
  close(nl);
  return rc;
}

// A client may open a new connection from a port whose previous connection to this backend is
// still in TIME_WAIT here (the backend closed first). The kernel accepts such a SYN and replaces the
// TIME_WAIT socket; a restored connection never brings a SYN, so restore does the replacing: it
// removes the socket holding the 4-tuple, but only when that socket is in TIME_WAIT (or the
// FIN_WAIT2 a closed socket waits in), never a live connection or a listener. Returns 1 if removed.
static int reclaim_time_wait(struct in_addr local, uint16_t lport, struct in_addr remote, uint16_t rport) {
  int st = sock_diag(SOCK_DIAG_BY_FAMILY, local, lport, remote, rport);
  if (st != 6 /* TCP_TIME_WAIT */ && st != 5 /* TCP_FIN_WAIT2 */) return 0;
  if (sock_diag(SOCK_DESTROY, local, lport, remote, rport) != 0) return 0;
  time_wait_reclaimed++;
  return 1;
}

static napi_value js_restore(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype t;
  if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_object) {
    napi_throw_type_error(env, NULL, "restore(params): params must be an object");
    return NULL;
  }
  napi_value p = argv[0];
  struct in_addr client, vip;
  uint32_t client_port, vip_port, snd_nxt, rcv_nxt, snd_wnd, rcv_wnd, mss;
  uint32_t flags = 0, snd_ws = 0, rcv_ws = 0, tsval = 0;
  if (prop_ipv4(env, p, "client", &client) || prop_ipv4(env, p, "vip", &vip)) {
    napi_throw_type_error(env, NULL, "restore: client and vip must be IPv4 address strings");
    return NULL;
  }
  if (prop_u32(env, p, "clientPort", &client_port, 1) || prop_u32(env, p, "vipPort", &vip_port, 1) ||
      prop_u32(env, p, "sndNxt", &snd_nxt, 1) || prop_u32(env, p, "rcvNxt", &rcv_nxt, 1) ||
      prop_u32(env, p, "sndWnd", &snd_wnd, 1) || prop_u32(env, p, "rcvWnd", &rcv_wnd, 1) ||
      prop_u32(env, p, "mss", &mss, 1) || prop_u32(env, p, "flags", &flags, 0) ||
      prop_u32(env, p, "sndWscale", &snd_ws, 0) || prop_u32(env, p, "rcvWscale", &rcv_ws, 0) ||
      prop_u32(env, p, "tsval", &tsval, 0)) {
    napi_throw_type_error(env, NULL, "restore: clientPort, vipPort, sndNxt, rcvNxt, sndWnd, rcvWnd, mss (and flags, sndWscale, rcvWscale, tsval) must be unsigned 32-bit integers");
    return NULL;
  }
  if (client_port == 0 || client_port > 65535 || vip_port == 0 || vip_port > 65535 || mss == 0 || mss > 65535 ||
      snd_ws > 14 || rcv_ws > 14 || flags > 7) {
    napi_throw_range_error(env, NULL, "restore: a port, mss, window shift or flags out of range");
    return NULL;
  }
  uint8_t *data = NULL;
  size_t len = 0;
  bool has = false;
  CHECK(napi_has_named_property(env, p, "data", &has));
  if (has) {
    napi_value dv;
    CHECK(napi_get_named_property(env, p, "data", &dv));
    CHECK(napi_typeof(env, dv, &t));
    if (t != napi_undefined && t != napi_null) {
      bool is = false;
      napi_typedarray_type tt;
      void *ptr;
      napi_value ab;
      size_t off;
      if (napi_is_typedarray(env, dv, &is) != napi_ok || !is ||
          napi_get_typedarray_info(env, dv, &tt, &len, &ptr, &ab, &off) != napi_ok || tt != napi_uint8_array) {
        napi_throw_type_error(env, NULL, "restore: data must be a Uint8Array (or Buffer)");
        return NULL;
      }
      data = ptr;
    }
  }
  if (len > MAX_DATA) {
    napi_throw_range_error(env, NULL, "restore: data larger than 1 MiB");
    return NULL;
  }

  const char *step = "socket";
  int err = 0;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return throw_step(env, "restore", step, errno);
#define STEP(name, call)  \
  do {                    \
    step = (name);        \
    if ((call) < 0) {     \
      err = errno;        \
      goto fail;          \
    }                     \
  } while (0)
  STEP("TCP_REPAIR on", set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON));
  STEP("IP_FREEBIND", set_int(fd, IPPROTO_IP, IP_FREEBIND, 1));
  // Before connect: connect computes the cached send MSS from the path MTU clamped by this (with
  // TCP_REPAIR_OPTIONS's MSS alone, set after connect, the default 536 would stay in force until
  // the path MTU changes). The kernel takes at most 32767 here.
  STEP("TCP_MAXSEG", set_int(fd, IPPROTO_TCP, TCP_MAXSEG, mss > 32767 ? 32767 : (int)mss));
  struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)vip_port), .sin_addr = vip};
  STEP("bind", bind(fd, (struct sockaddr *)&local, sizeof local));
  STEP("TCP_REPAIR_QUEUE send", set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE));
  STEP("TCP_QUEUE_SEQ send", set_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)snd_nxt));
  STEP("TCP_REPAIR_QUEUE recv", set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE));
  STEP("TCP_QUEUE_SEQ recv", set_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)rcv_nxt));
  struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons((uint16_t)client_port), .sin_addr = client};
  step = "connect";
  if (connect(fd, (struct sockaddr *)&peer, sizeof peer) < 0) {
    err = errno;
    if (err != EADDRNOTAVAIL || !reclaim_time_wait(vip, local.sin_port, client, peer.sin_port)) goto fail;
    STEP("connect", connect(fd, (struct sockaddr *)&peer, sizeof peer));
  }

  struct tcp_repair_opt opts[4];
  int nopt = 0;
  opts[nopt].opt_code = TCPOPT_MAXSEG;
  opts[nopt++].opt_val = mss;
  if (flags & FLAG_WSCALE) {
    opts[nopt].opt_code = TCPOPT_WINDOW;
    opts[nopt++].opt_val = snd_ws | (rcv_ws << 16);
  }
  if (flags & FLAG_SACK) {
    opts[nopt].opt_code = TCPOPT_SACK_PERMITTED;
    opts[nopt++].opt_val = 0;
  }
  if (flags & FLAG_TS) {
    opts[nopt].opt_code = TCPOPT_TIMESTAMP;
    opts[nopt++].opt_val = 0;
  }
  STEP("TCP_REPAIR_OPTIONS", setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts, (socklen_t)(nopt * sizeof opts[0])));
  // Since Linux 6.7 the low bit of this value selects the microsecond TSval clock (tcp_usec_ts): an
  // odd value would make this connection's timestamps tick 1000 times faster than the front end's
  // millisecond clock. Rounded up to even: the millisecond clock, never behind the given TSval.
  if (flags & FLAG_TS) STEP("TCP_TIMESTAMP", set_int(fd, IPPROTO_TCP, TCP_TIMESTAMP, (int)((tsval + 1) & ~1u)));

  // The held bytes, into the receive queue (still selected): rcv_nxt advances past them.
  size_t done = 0;
  while (done < len) {
    ssize_t w = send(fd, data + done, len - done, MSG_NOSIGNAL);
    step = "send (receive queue)";
    if (w < 0) {
      if (errno == EINTR) continue;
      err = errno;
      goto fail;
    }
    if (w == 0) {
      err = ENOBUFS;
      goto fail;
    }
    done += (size_t)w;
  }

  // snd_wl1: the client's segment that last set the window is at most at the first held byte, so
  // any later client segment updates it. rcv_wup: the front end acknowledged every held byte.
  struct tcp_repair_window w = {
    .snd_wl1 = rcv_nxt,
    .snd_wnd = snd_wnd,
    .max_window = snd_wnd,
    .rcv_wnd = rcv_wnd,
    .rcv_wup = rcv_nxt + (uint32_t)len,
  };
  STEP("TCP_REPAIR_WINDOW", setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof w));
  STEP("TCP_REPAIR_QUEUE none", set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE));
  STEP("TCP_REPAIR off", set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP));
#undef STEP
  napi_value out;
  CHECK(napi_create_int32(env, fd, &out));
  return out;

fail:
  close(fd); // still in repair mode: closed without a FIN or RST
  return throw_step(env, "restore", step, err);
}

static int set_u32_prop(napi_env env, napi_value obj, const char *name, double v) {
  napi_value x;
  if (napi_create_double(env, v, &x) != napi_ok) return -1;
  return napi_set_named_property(env, obj, name, x) == napi_ok ? 0 : -1;
}

static int set_str_prop(napi_env env, napi_value obj, const char *name, const char *s) {
  napi_value x;
  if (napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &x) != napi_ok) return -1;
  return napi_set_named_property(env, obj, name, x) == napi_ok ? 0 : -1;
}

static napi_value js_dump(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  bool do_close = false;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "dump(fd, close?): fd must be a non-negative integer");
    return NULL;
  }
  if (argc > 1) napi_get_value_bool(env, argv[1], &do_close);

  struct sockaddr_in la, ra;
  socklen_t ll = sizeof la, rl = sizeof ra;
  if (getsockname(fd, (struct sockaddr *)&la, &ll) < 0) return throw_step(env, "dump", "getsockname", errno);
  if (la.sin_family != AF_INET) return throw_step(env, "dump", "getsockname", EAFNOSUPPORT);
  if (getpeername(fd, (struct sockaddr *)&ra, &rl) < 0) return throw_step(env, "dump", "getpeername", errno);
  struct tcp_info ti;
  socklen_t til = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &til) < 0) return throw_step(env, "dump", "TCP_INFO", errno);

  const char *step = "TCP_REPAIR on";
  int err = 0;
  uint8_t *buf = NULL;
  int inq = 0, outq = 0, mss = 0, tsval = 0;
  uint32_t snd_seq = 0, rcv_seq = 0;
  struct tcp_repair_window w;
  socklen_t sl;
  if (set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON) < 0) return throw_step(env, "dump", step, errno);
#define STEP(name, call)  \
  do {                    \
    step = (name);        \
    if ((call) < 0) {     \
      err = errno;        \
      goto fail;          \
    }                     \
  } while (0)
  STEP("SIOCINQ", ioctl(fd, SIOCINQ, &inq));
  STEP("SIOCOUTQ", ioctl(fd, SIOCOUTQ, &outq));
  STEP("TCP_REPAIR_QUEUE send", set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE));
  sl = sizeof snd_seq;
  STEP("TCP_QUEUE_SEQ send", getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &snd_seq, &sl));
  STEP("TCP_REPAIR_QUEUE recv", set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE));
  sl = sizeof rcv_seq;
  STEP("TCP_QUEUE_SEQ recv", getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &rcv_seq, &sl));
  if (inq > 0) {
    buf = malloc((size_t)inq);
    if (!buf) {
      step = "malloc";
      err = ENOMEM;
      goto fail;
    }
    ssize_t r = recv(fd, buf, (size_t)inq, MSG_PEEK | MSG_DONTWAIT);
    step = "recv (peek receive queue)";
    if (r < 0) {
      err = errno;
      goto fail;
    }
    inq = (int)r;
  }
  STEP("TCP_REPAIR_QUEUE none", set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE));
  sl = sizeof w;
  STEP("TCP_REPAIR_WINDOW", getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &sl));
  sl = sizeof mss;
  STEP("TCP_MAXSEG", getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, &sl));
  sl = sizeof tsval;
  STEP("TCP_TIMESTAMP", getsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &tsval, &sl));
  if (do_close) {
    STEP("close", close(fd));
  } else {
    STEP("TCP_REPAIR off", set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP));
  }
#undef STEP

  napi_value out, win, dv;
  char a[INET_ADDRSTRLEN];
  CHECK(napi_create_object(env, &out));
  inet_ntop(AF_INET, &la.sin_addr, a, sizeof a);
  set_str_prop(env, out, "local", a);
  set_u32_prop(env, out, "localPort", ntohs(la.sin_port));
  inet_ntop(AF_INET, &ra.sin_addr, a, sizeof a);
  set_str_prop(env, out, "remote", a);
  set_u32_prop(env, out, "remotePort", ntohs(ra.sin_port));
  set_u32_prop(env, out, "state", ti.tcpi_state);
  set_u32_prop(env, out, "sndSeq", snd_seq);
  set_u32_prop(env, out, "rcvSeq", rcv_seq);
  set_u32_prop(env, out, "outq", outq);
  set_u32_prop(env, out, "inq", inq);
  set_u32_prop(env, out, "mss", mss);
  set_u32_prop(env, out, "sndMss", ti.tcpi_snd_mss);
  set_u32_prop(env, out, "advMss", ti.tcpi_advmss);
  set_u32_prop(env, out, "options", ti.tcpi_options);
  set_u32_prop(env, out, "sndWscale", ti.tcpi_snd_wscale);
  set_u32_prop(env, out, "rcvWscale", ti.tcpi_rcv_wscale);
  set_u32_prop(env, out, "tsval", (uint32_t)tsval);
  CHECK(napi_create_object(env, &win));
  set_u32_prop(env, win, "sndWl1", w.snd_wl1);
  set_u32_prop(env, win, "sndWnd", w.snd_wnd);
  set_u32_prop(env, win, "maxWindow", w.max_window);
  set_u32_prop(env, win, "rcvWnd", w.rcv_wnd);
  set_u32_prop(env, win, "rcvWup", w.rcv_wup);
  CHECK(napi_set_named_property(env, out, "window", win));
  void *copy;
  if (napi_create_buffer_copy(env, (size_t)inq, buf ? buf : (const void *)"", &copy, &dv) != napi_ok) {
    free(buf);
    napi_throw_error(env, "ESLBNAPI", "sessionlb repair: N-API call failed");
    return NULL;
  }
  free(buf);
  CHECK(napi_set_named_property(env, out, "data", dv));
  return out;

fail:
  free(buf);
  set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
  set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP);
  return throw_step(env, "dump", step, err);
}

// closeSilently(fd): closes a socket in repair mode, so the peer sees nothing (no FIN, no RST).
static napi_value js_close_silently(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "closeSilently(fd): fd must be a non-negative integer");
    return NULL;
  }
  if (set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON) < 0) return throw_step(env, "closeSilently", "TCP_REPAIR on", errno);
  if (close(fd) < 0) return throw_step(env, "closeSilently", "close", errno);
  return NULL;
}

// passFd(path, fd, msg): sends msg (a Uint8Array, at most 4096 bytes) and a duplicate of descriptor
// fd in one datagram (SCM_RIGHTS) to the Unix datagram socket bound at path: how the agent hands a
// restored connection to a server process that is not its child (docs/handoff.md "Other servers").
// The caller keeps its own fd (and closes it). Throws Error with errno/step/code.
static int unix_path(napi_env env, napi_value v, const char *fn, struct sockaddr_un *sa);

static napi_value js_pass_fd(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    napi_throw_type_error(env, NULL, "passFd(path, fd, msg)");
    return NULL;
  }
  struct sockaddr_un to;
  if (unix_path(env, argv[0], "passFd", &to) < 0) return NULL;
  int32_t fd = -1;
  if (napi_get_value_int32(env, argv[1], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "passFd: fd must be a descriptor");
    return NULL;
  }
  bool is_ta = false, ok = false;
  void *data = NULL;
  size_t len = 0;
  napi_is_typedarray(env, argv[2], &is_ta);
  if (is_ta) {
    napi_typedarray_type tt;
    napi_value ab;
    size_t off;
    ok = napi_get_typedarray_info(env, argv[2], &tt, &len, &data, &ab, &off) == napi_ok && tt == napi_uint8_array;
  }
  if (!ok) {
    napi_throw_type_error(env, NULL, "passFd: msg must be a Uint8Array (or Buffer)");
    return NULL;
  }
  if (len > 4096) {
    napi_throw_range_error(env, NULL, "passFd: msg larger than 4096 bytes");
    return NULL;
  }
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return throw_step(env, "passFd", "socket", errno);
  char one = 0;
  struct iovec iov = {.iov_base = len ? data : &one, .iov_len = len ? len : 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct msghdr mh = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  if (sendmsg(s, &mh, MSG_DONTWAIT) < 0) {
    int err = errno;
    close(s);
    return throw_step(env, "passFd", "sendmsg", err);
  }
  close(s);
  return NULL;
}

// ---- the agent -> server process path: Unix datagram sockets carrying descriptors ----

#define FDS_PER_DGRAM 253 /* SCM_MAX_FD */

static int unix_path(napi_env env, napi_value v, const char *fn, struct sockaddr_un *sa) {
  size_t plen = 0;
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (napi_get_value_string_utf8(env, v, sa->sun_path, sizeof sa->sun_path, &plen) != napi_ok || plen == 0 ||
      plen >= sizeof sa->sun_path - 1) {
    char m[96];
    snprintf(m, sizeof m, "%s: path must be a string of 1..106 bytes", fn);
    napi_throw_type_error(env, NULL, m);
    return -1;
  }
  return 0;
}

static napi_value make_i32(napi_env env, int32_t v) {
  napi_value out;
  if (napi_create_int32(env, v, &out) != napi_ok) return NULL;
  return out;
}

// dgramBind(path) -> fd
static napi_value js_dgram_bind(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un sa;
  if (argc < 1 || unix_path(env, argv[0], "dgramBind", &sa) < 0) return NULL;
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) return throw_step(env, "dgramBind", "socket", errno);
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int err = errno;
    close(s);
    return throw_step(env, "dgramBind", "bind", err);
  }
  return make_i32(env, s);
}

// dgramConnect(path) -> fd
static napi_value js_dgram_connect(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un sa;
  if (argc < 1 || unix_path(env, argv[0], "dgramConnect", &sa) < 0) return NULL;
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) return throw_step(env, "dgramConnect", "socket", errno);
  // Room for many small datagrams in flight (each skb is charged to the sender until read).
  int sz = 4 << 20;
  setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int err = errno;
    close(s);
    return throw_step(env, "dgramConnect", "connect", err);
  }
  return make_i32(env, s);
}

// sendFds(sock, fds, close?) -> number sent
static napi_value js_send_fds(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t sock = -1;
  bool is_arr = false, do_close = false;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &sock) != napi_ok || sock < 0 ||
      napi_is_array(env, argv[1], &is_arr) != napi_ok || !is_arr) {
    napi_throw_type_error(env, NULL, "sendFds(sock, fds[, close])");
    return NULL;
  }
  if (argc >= 3) napi_get_value_bool(env, argv[2], &do_close);
  uint32_t n = 0;
  CHECK(napi_get_array_length(env, argv[1], &n));
  union {
    char buf[CMSG_SPACE(sizeof(int) * FDS_PER_DGRAM)];
    struct cmsghdr align;
  } ctl;
  int fds[FDS_PER_DGRAM];
  uint32_t sent = 0;
  while (sent < n) {
    uint32_t k = n - sent < FDS_PER_DGRAM ? n - sent : FDS_PER_DGRAM;
    for (uint32_t i = 0; i < k; i++) {
      napi_value e;
      CHECK(napi_get_element(env, argv[1], sent + i, &e));
      if (napi_get_value_int32(env, e, &fds[i]) != napi_ok || fds[i] < 0) {
        napi_throw_type_error(env, NULL, "sendFds: fds must hold descriptors");
        return NULL;
      }
    }
    char one = 'F';
    struct iovec iov = {.iov_base = &one, .iov_len = 1};
    memset(&ctl, 0, sizeof ctl);
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = CMSG_SPACE(sizeof(int) * k)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * k);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * k);
    ssize_t r;
    do r = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || sent > 0) break;
      return throw_step(env, "sendFds", "sendmsg", err);
    }
    if (do_close)
      for (uint32_t i = 0; i < k; i++) close(fds[i]);
    sent += k;
  }
  return make_i32(env, (int32_t)sent);
}

// recvFds(sock, max) -> fds
static napi_value js_recv_fds(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t sock = -1, max = 1024;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &sock) != napi_ok || sock < 0) {
    napi_throw_type_error(env, NULL, "recvFds(sock, max)");
    return NULL;
  }
  if (argc >= 2) napi_get_value_int32(env, argv[1], &max);
  if (max < 1) max = 1;
  napi_value out;
  CHECK(napi_create_array(env, &out));
  uint32_t got = 0;
  union {
    char buf[CMSG_SPACE(sizeof(int) * FDS_PER_DGRAM)];
    struct cmsghdr align;
  } ctl;
  while ((int32_t)got < max) {
    char b[64];
    struct iovec iov = {.iov_base = b, .iov_len = sizeof b};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t r;
    do r = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || got > 0) break;
      return throw_step(env, "recvFds", "recvmsg", err);
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        napi_value v;
        if (napi_create_int32(env, fd, &v) != napi_ok || napi_set_element(env, out, got, v) != napi_ok) {
          close(fd); // cannot hand it over: never leak it
          continue;
        }
        got++;
      }
    }
  }
  return out;
}

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_async_context ctx;
  int stopped;
} poller_t;

static void poll_closed(uv_handle_t *h) { free(h->data); }

static void on_poll(uv_poll_t *h, int status, int events) {
  poller_t *p = h->data;
  if (p->stopped) return;
  napi_env env = p->env;
  napi_handle_scope hs;
  if (napi_open_handle_scope(env, &hs) != napi_ok) return;
  napi_value cb, recv, arg, result;
  napi_get_reference_value(env, p->cb, &cb);
  napi_get_global(env, &recv);
  napi_create_int32(env, status < 0 ? status : events, &arg);
  if (napi_make_callback(env, p->ctx, recv, cb, 1, &arg, &result) == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, hs);
}

static void poller_stop(napi_env env, poller_t *p) {
  if (p->stopped) return;
  p->stopped = 1;
  uv_poll_stop(&p->poll);
  if (env) {
    napi_delete_reference(env, p->cb);
    napi_async_destroy(env, p->ctx);
  }
  uv_close((uv_handle_t *)&p->poll, poll_closed);
}

static void poller_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  (void)env;
  poller_stop(NULL, data);
}

// pollStart(fd, events, callback) -> handle
static napi_value js_poll_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1, ev = 0;
  napi_valuetype t;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || napi_get_value_int32(env, argv[1], &ev) != napi_ok ||
      (ev & 3) == 0 || napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "pollStart(fd, events (1 readable, 2 writable), callback)");
    return NULL;
  }
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  poller_t *p = calloc(1, sizeof *p);
  if (!p) return throw_step(env, "pollStart", "calloc", ENOMEM);
  p->env = env;
  p->poll.data = p;
  int rc = uv_poll_init(loop, &p->poll, fd);
  if (rc < 0) {
    free(p);
    napi_throw_error(env, "EUVPOLL", uv_strerror(rc));
    return NULL;
  }
  napi_value name, handle;
  if (napi_create_string_utf8(env, "sessionlb.handoff", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &p->ctx) != napi_ok || napi_create_reference(env, argv[2], 1, &p->cb) != napi_ok ||
      napi_create_object(env, &handle) != napi_ok) {
    p->stopped = 1;
    uv_close((uv_handle_t *)&p->poll, poll_closed);
    napi_throw_error(env, "ESLBNAPI", "pollStart: N-API call failed");
    return NULL;
  }
  rc = uv_poll_start(&p->poll, (ev & 1 ? UV_READABLE : 0) | (ev & 2 ? UV_WRITABLE : 0), on_poll);
  if (rc < 0 || napi_wrap(env, handle, p, poller_finalize, NULL, NULL) != napi_ok) {
    poller_stop(env, p);
    napi_throw_error(env, "EUVPOLL", rc < 0 ? uv_strerror(rc) : "pollStart: wrap failed");
    return NULL;
  }
  return handle;
}

// pollStop(handle)
static napi_value js_poll_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  poller_t *p = NULL;
  if (argc < 1 || napi_remove_wrap(env, argv[0], (void **)&p) != napi_ok || !p) return NULL;
  poller_stop(env, p);
  return NULL;
}

// counters() -> { timeWaitReclaimed }: TIME_WAIT sockets restore has replaced (see reclaim_time_wait).
static napi_value js_counters(napi_env env, napi_callback_info info) {
  napi_value o, v;
  if (napi_create_object(env, &o) != napi_ok) return NULL;
  if (napi_create_double(env, (double)time_wait_reclaimed, &v) != napi_ok) return NULL;
  if (napi_set_named_property(env, o, "timeWaitReclaimed", v) != napi_ok) return NULL;
  return o;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"counters", NULL, js_counters, NULL, NULL, NULL, napi_enumerable, NULL},
    {"passFd", NULL, js_pass_fd, NULL, NULL, NULL, napi_enumerable, NULL},
    {"dgramBind", NULL, js_dgram_bind, NULL, NULL, NULL, napi_enumerable, NULL},
    {"dgramConnect", NULL, js_dgram_connect, NULL, NULL, NULL, napi_enumerable, NULL},
    {"sendFds", NULL, js_send_fds, NULL, NULL, NULL, napi_enumerable, NULL},
    {"recvFds", NULL, js_recv_fds, NULL, NULL, NULL, napi_enumerable, NULL},
    {"pollStart", NULL, js_poll_start, NULL, NULL, NULL, napi_enumerable, NULL},
    {"pollStop", NULL, js_poll_stop, NULL, NULL, NULL, napi_enumerable, NULL},
    {"restore", NULL, js_restore, NULL, NULL, NULL, napi_enumerable, NULL},
    {"dump", NULL, js_dump, NULL, NULL, NULL, napi_enumerable, NULL},
    {"closeSilently", NULL, js_close_silently, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
