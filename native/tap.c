// sessionlb TAP I/O: a small N-API addon (C, node_api.h only).
//
// open(name, persist, mtu[, offload]) -> [fd, name]   /dev/net/tun, IFF_TAP | IFF_NO_PI, non-blocking,
//                                                 link set up (and its MTU set when mtu > 0).
//     offload: IFF_VNET_HDR with TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6: the kernel hands over TCP
//     super-frames (GSO, up to 64 KiB) with partial checksums and takes them back. Every read and
//     write on such a device carries a 10-byte virtio_net_hdr, kept per slot in `hdrs` below.
// close(fd)
// readBatch(fd, mem, descPtr, slots, cap, max, port[, mac[, hdrs]]) -> n
//     reads up to `max` frames straight into the WebAssembly memory `mem` (an ArrayBuffer): frame i
//     goes to mem[slots[i]] (at most `cap` bytes) and descriptor i at descPtr + 32 i is filled
//     (data, caplen, wirelen, port, link 1, tsSec/tsNsec from CLOCK_REALTIME, verdict bytes 0).
//     With `mac` (6 bytes), unicast frames addressed to another MAC are read and discarded (a
//     bridge floods unknown unicast to every port). With offload, frame i's virtio_net_hdr goes to
//     hdrs[10 i] and a partial checksum (NEEDS_CSUM) is completed here, so the engine sees (and
//     incrementally updates) a whole checksum. Stops at EAGAIN. One call per batch; no JS object per frame.
// writeBatch(fd, mem, descPtr, list, n[, hdrs]) -> written
//     writes the frames of descriptors list[0..n-1] (data, caplen from the descriptor); with
//     offload, each with the GSO type and size read with it (hdrs[10 list[i]]), checksum complete.
// writeFrames(fd, mem, offs, lens, n) -> written   frames at mem[offs[i]], lens[i] bytes
// pollStart(fd, callback) -> handle   libuv uv_poll (readable) calling callback() on the JS thread
// pollStop(handle)
// stats() -> [readErrors, writeErrors, writeAgain, lastErrno, filtered]
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sys/uio.h>

#define VNET_HDR_LEN 10
#define MAX_FDS 65536
static unsigned char g_vnet[MAX_FDS]; // fds opened with offload

static uint64_t g_read_errors, g_write_errors, g_write_again, g_filtered;
static int g_last_errno;

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, "ESLBNAPI", "sessionlb tap: N-API call failed"); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  char code[32];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  const char *name = err == EPERM ? "EPERM" : err == EACCES ? "EACCES" : err == ENOENT ? "ENOENT"
                   : err == EBUSY ? "EBUSY" : err == ENODEV ? "ENODEV" : err == EINVAL ? "EINVAL" : NULL;
  if (name) snprintf(code, sizeof code, "%s", name);
  else snprintf(code, sizeof code, "E%d", err);
  napi_throw_error(env, code, msg);
  return NULL;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok ? 0 : -1;
}

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

// An ArrayBuffer (or a typed array / DataView over one) -> base pointer and length.
static int get_buffer(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is;
  if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    void *p;
    if (napi_get_arraybuffer_info(env, v, &p, len) != napi_ok) return -1;
    *data = p;
    return 0;
  }
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type t;
    size_t n, off;
    void *p;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &t, &n, &p, &ab, &off) != napi_ok) return -1;
    size_t el = (t == napi_uint8_array || t == napi_int8_array || t == napi_uint8_clamped_array) ? 1
              : (t == napi_uint16_array || t == napi_int16_array) ? 2
              : (t == napi_float64_array || t == napi_bigint64_array || t == napi_biguint64_array) ? 8 : 4;
    *data = p;
    *len = n * el;
    return 0;
  }
  return -1;
}

// A Uint32Array -> pointer and element count.
static int get_u32_array(napi_env env, napi_value v, uint32_t **data, size_t *n) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return -1;
  napi_typedarray_type t;
  void *p;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, n, &p, &ab, &off) != napi_ok || t != napi_uint32_array) return -1;
  *data = p;
  return 0;
}

static int ifreq_ioctl(const char *name, unsigned long req, struct ifreq *ifr) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -errno;
  snprintf(ifr->ifr_name, IFNAMSIZ, "%s", name);
  int rc = ioctl(s, req, ifr);
  int err = errno;
  close(s);
  return rc < 0 ? -err : 0;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ + 1] = {0};
  size_t nlen = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen) != napi_ok) {
    napi_throw_type_error(env, NULL, "open(name, persist, mtu): name must be a string");
    return NULL;
  }
  if (nlen >= IFNAMSIZ) {
    napi_throw_error(env, "EINVAL", "interface name too long (at most 15 bytes)");
    return NULL;
  }
  bool persist = false, offload = false;
  uint32_t mtu = 0;
  if (argc > 1) napi_get_value_bool(env, argv[1], &persist);
  if (argc > 2) get_u32(env, argv[2], &mtu);
  if (argc > 3) napi_get_value_bool(env, argv[3], &offload);

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/net/tun", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (fd >= MAX_FDS) {
    close(fd);
    return throw_errno(env, "open /dev/net/tun", EMFILE);
  }
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "TUNSETIFF (create or attach the TAP device)", err);
  }
  g_vnet[fd] = 0;
  if (offload) {
    int hl = VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &hl) < 0 || ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0) {
      int err = errno;
      close(fd);
      return throw_errno(env, "TUNSETOFFLOAD (checksum and TSO offloads)", err);
    }
    g_vnet[fd] = 1;
  } else {
    // A persistent device keeps the offloads an earlier user set: without the header they would
    // hand us super-frames and partial checksums, so turn them off.
    ioctl(fd, TUNSETOFFLOAD, 0);
  }
  if (persist && ioctl(fd, TUNSETPERSIST, 1) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "TUNSETPERSIST", err);
  }
  char actual[IFNAMSIZ + 1] = {0};
  memcpy(actual, ifr.ifr_name, IFNAMSIZ);
  struct ifreq r;
  int rc;
  if (mtu > 0) {
    memset(&r, 0, sizeof r);
    r.ifr_mtu = (int)mtu;
    if ((rc = ifreq_ioctl(actual, SIOCSIFMTU, &r)) < 0) {
      close(fd);
      return throw_errno(env, "SIOCSIFMTU (set the TAP device's MTU)", -rc);
    }
  }
  memset(&r, 0, sizeof r);
  if ((rc = ifreq_ioctl(actual, SIOCGIFFLAGS, &r)) == 0 && !(r.ifr_flags & IFF_UP)) {
    r.ifr_flags |= IFF_UP;
    rc = ifreq_ioctl(actual, SIOCSIFFLAGS, &r);
  }
  if (rc < 0) {
    close(fd);
    return throw_errno(env, "SIOCSIFFLAGS (set the TAP device up)", -rc);
  }
  napi_value out, vfd, vname;
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_int32(env, fd, &vfd));
  CHECK(napi_create_string_utf8(env, actual, NAPI_AUTO_LENGTH, &vname));
  CHECK(napi_set_element(env, out, 0, vfd));
  CHECK(napi_set_element(env, out, 1, vname));
  return out;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || get_i32(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "close(fd)");
    return NULL;
  }
  if (fd >= 0 && fd < MAX_FDS) g_vnet[fd] = 0;
  close(fd);
  return NULL;
}

static napi_value js_read_batch(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint8_t *mem, *mac = NULL, *hdrs = NULL;
  size_t memlen, nslots, maclen = 0, hdrlen = 0;
  uint32_t desc, cap, max, port, *slots;
  if (argc < 7 || get_i32(env, argv[0], &fd) || get_buffer(env, argv[1], &mem, &memlen) ||
      get_u32(env, argv[2], &desc) || get_u32_array(env, argv[3], &slots, &nslots) ||
      get_u32(env, argv[4], &cap) || get_u32(env, argv[5], &max) || get_u32(env, argv[6], &port)) {
    napi_throw_type_error(env, NULL, "readBatch(fd, memory, descPtr, slots: Uint32Array, cap, max, port[, mac])");
    return NULL;
  }
  if (argc > 7) {
    napi_valuetype t;
    napi_typeof(env, argv[7], &t);
    if (t != napi_undefined && t != napi_null && (get_buffer(env, argv[7], &mac, &maclen) || maclen < 6)) {
      napi_throw_type_error(env, NULL, "readBatch: mac must be 6 bytes");
      return NULL;
    }
  }
  int vnet = fd >= 0 && fd < MAX_FDS && g_vnet[fd];
  if (vnet) {
    if (argc < 9 || get_buffer(env, argv[8], &hdrs, &hdrlen) || hdrlen < (size_t)max * VNET_HDR_LEN) {
      napi_throw_type_error(env, NULL, "readBatch: an offload device needs hdrs (10 bytes per slot)");
      return NULL;
    }
  }
  if (max > nslots) max = (uint32_t)nslots;
  if ((size_t)desc + (size_t)max * 32 > memlen) {
    napi_throw_range_error(env, NULL, "readBatch: descriptors outside memory");
    return NULL;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint32_t n = 0;
  while (n < max) {
    uint32_t off = slots[n];
    if ((size_t)off + cap > memlen) {
      napi_throw_range_error(env, NULL, "readBatch: slot outside memory");
      return NULL;
    }
    ssize_t r;
    uint8_t *h = vnet ? hdrs + (size_t)n * VNET_HDR_LEN : NULL;
    if (vnet) {
      struct iovec iov[2] = {{h, VNET_HDR_LEN}, {mem + off, cap}};
      r = readv(fd, iov, 2);
      if (r >= 0) r = r >= VNET_HDR_LEN ? r - VNET_HDR_LEN : 0;
    } else r = read(fd, mem + off, cap);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        g_read_errors++;
        g_last_errno = errno;
      }
      break;
    }
    if (r == 0) break;
    if (mac && r >= 6 && !(mem[off] & 1) && memcmp(mem + off, mac, 6) != 0) {
      g_filtered++;
      continue;
    }
    if (h && (h[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM)) {
      // Complete the partial checksum as skb_checksum_help would: the one's-complement sum from
      // csum_start to the end (the field holds the pseudo-header sum), folded, stored at +offset.
      uint16_t cs, co;
      memcpy(&cs, h + 6, 2);
      memcpy(&co, h + 8, 2);
      if ((size_t)cs + co + 2 <= (size_t)r) {
        const uint8_t *p = mem + off + cs;
        size_t len = (size_t)r - cs;
        uint64_t sum = 0;
        size_t k = 0;
        for (; k + 1 < len; k += 2) sum += ((uint32_t)p[k] << 8) | p[k + 1];
        if (k < len) sum += (uint32_t)p[k] << 8;
        while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
        uint16_t c = (uint16_t)~sum;
        mem[off + cs + co] = (uint8_t)(c >> 8);
        mem[off + cs + co + 1] = (uint8_t)c;
      }
      h[0] &= (uint8_t)~VIRTIO_NET_HDR_F_NEEDS_CSUM;
    }
    uint8_t *d = mem + desc + (size_t)n * 32;
    uint32_t len = (uint32_t)r;
    memcpy(d + 0, &off, 4);
    memcpy(d + 4, &len, 4);
    memcpy(d + 8, &len, 4);  // TAP without IFF_VNET_HDR: frames arrive whole
    uint16_t p16 = (uint16_t)port, link = 1;
    memcpy(d + 12, &p16, 2);
    memcpy(d + 14, &link, 2);
    uint32_t s = (uint32_t)ts.tv_sec, ns = (uint32_t)ts.tv_nsec;
    memcpy(d + 16, &s, 4);
    memcpy(d + 20, &ns, 4);
    memset(d + 24, 0, 8);
    n++;
  }
  napi_value out;
  CHECK(napi_create_uint32(env, n, &out));
  return out;
}

/**
 * Writes one frame, behind the virtio_net_hdr `vh` when the device has IFF_VNET_HDR (vh != NULL).
 * Returns 1 if written; 0 otherwise, counting EAGAIN and other errors.
 */
static uint32_t write_frame(int fd, const uint8_t *frame, size_t len, uint8_t *vh) {
  ssize_t r;
  if (vh) {
    struct iovec iov[2] = {{vh, VNET_HDR_LEN}, {(void *)frame, len}};
    do r = writev(fd, iov, 2); while (r < 0 && errno == EINTR);
  } else {
    do r = write(fd, frame, len); while (r < 0 && errno == EINTR);
  }
  if (r >= 0) return 1;
  if (errno == EAGAIN || errno == EWOULDBLOCK) g_write_again++;
  else {
    g_write_errors++;
    g_last_errno = errno;
  }
  return 0;
}

static napi_value js_write_batch(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint8_t *mem, *hdrs = NULL;
  size_t memlen, nlist, hdrlen = 0;
  uint32_t desc, n, *list;
  if (argc < 5 || get_i32(env, argv[0], &fd) || get_buffer(env, argv[1], &mem, &memlen) ||
      get_u32(env, argv[2], &desc) || get_u32_array(env, argv[3], &list, &nlist) || get_u32(env, argv[4], &n)) {
    napi_throw_type_error(env, NULL, "writeBatch(fd, memory, descPtr, list: Uint32Array, n[, hdrs])");
    return NULL;
  }
  if (n > nlist) n = (uint32_t)nlist;
  int vnet = fd >= 0 && fd < MAX_FDS && g_vnet[fd];
  if (vnet && argc > 5) {
    napi_valuetype t;
    napi_typeof(env, argv[5], &t);
    if (t != napi_undefined && t != napi_null && get_buffer(env, argv[5], &hdrs, &hdrlen)) {
      napi_throw_type_error(env, NULL, "writeBatch: hdrs must be a buffer");
      return NULL;
    }
  }
  uint32_t written = 0;
  for (uint32_t i = 0; i < n; i++) {
    size_t dp = (size_t)desc + (size_t)list[i] * 32;
    if (dp + 32 > memlen) continue;
    uint32_t off, len;
    memcpy(&off, mem + dp, 4);
    memcpy(&len, mem + dp + 4, 4);
    if ((size_t)off + len > memlen) continue;
    if (vnet) {
      // The GSO type and size the frame came with (from another offload device), or none.
      uint8_t h[VNET_HDR_LEN] = {0};
      size_t ho = (size_t)list[i] * VNET_HDR_LEN;
      if (hdrs && ho + VNET_HDR_LEN <= hdrlen) {
        h[1] = hdrs[ho + 1];
        memcpy(h + 2, hdrs + ho + 2, 4); // hdr_len, gso_size
      }
      written += write_frame(fd, mem + off, len, h);
    } else {
      written += write_frame(fd, mem + off, len, NULL);
    }
  }
  napi_value out;
  CHECK(napi_create_uint32(env, written, &out));
  return out;
}

static napi_value js_write_frames(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint8_t *mem;
  size_t memlen, no, nl;
  uint32_t n, *offs, *lens;
  if (argc < 5 || get_i32(env, argv[0], &fd) || get_buffer(env, argv[1], &mem, &memlen) ||
      get_u32_array(env, argv[2], &offs, &no) || get_u32_array(env, argv[3], &lens, &nl) || get_u32(env, argv[4], &n)) {
    napi_throw_type_error(env, NULL, "writeFrames(fd, buffer, offs: Uint32Array, lens: Uint32Array, n)");
    return NULL;
  }
  if (n > no) n = (uint32_t)no;
  if (n > nl) n = (uint32_t)nl;
  uint32_t written = 0;
  for (uint32_t i = 0; i < n; i++) {
    if ((size_t)offs[i] + lens[i] > memlen) continue;
    uint8_t h[VNET_HDR_LEN] = {0};
    written += write_frame(fd, mem + offs[i], lens[i], fd >= 0 && fd < MAX_FDS && g_vnet[fd] ? h : NULL);
  }
  napi_value out;
  CHECK(napi_create_uint32(env, written, &out));
  return out;
}

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_async_context ctx;
  int stopped;
} poller_t;

static void on_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  poller_t *p = h->data;
  if (p->stopped) return;
  napi_env env = p->env;
  napi_handle_scope hs;
  if (napi_open_handle_scope(env, &hs) != napi_ok) return;
  napi_value cb, recv, arg, result;
  napi_get_reference_value(env, p->cb, &cb);
  napi_get_global(env, &recv);
  napi_create_int32(env, status < 0 ? status : events, &arg);
  // napi_make_callback runs the microtask queue afterwards, as a normal libuv callback would.
  napi_status st = napi_make_callback(env, p->ctx, recv, cb, 1, &arg, &result);
  if (st == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, hs);
}

static void poller_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  poller_t *p = data;
  if (!p->stopped) {
    p->stopped = 1;
    uv_poll_stop(&p->poll);
    uv_close((uv_handle_t *)&p->poll, on_closed);
  }
}

static napi_value js_poll_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  napi_valuetype t;
  if (argc < 2 || get_i32(env, argv[0], &fd) || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "pollStart(fd, callback)");
    return NULL;
  }
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  poller_t *p = calloc(1, sizeof *p);
  if (!p) return throw_errno(env, "pollStart", ENOMEM);
  p->env = env;
  p->poll.data = p;
  int rc = uv_poll_init(loop, &p->poll, fd);
  if (rc < 0) {
    free(p);
    napi_throw_error(env, "EUVPOLL", uv_strerror(rc));
    return NULL;
  }
  napi_value name;
  CHECK(napi_create_string_utf8(env, "sessionlb.tap", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &p->ctx));
  CHECK(napi_create_reference(env, argv[1], 1, &p->cb));
  rc = uv_poll_start(&p->poll, UV_READABLE, on_readable);
  if (rc < 0) {
    napi_throw_error(env, "EUVPOLL", uv_strerror(rc));
    return NULL;
  }
  napi_value handle;
  CHECK(napi_create_object(env, &handle));
  CHECK(napi_wrap(env, handle, p, poller_finalize, NULL, NULL));
  return handle;
}

static napi_value js_poll_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  poller_t *p;
  if (argc < 1 || napi_remove_wrap(env, argv[0], (void **)&p) != napi_ok || !p) return NULL;
  if (!p->stopped) {
    p->stopped = 1;
    uv_poll_stop(&p->poll);
    napi_delete_reference(env, p->cb);
    napi_async_destroy(env, p->ctx);
    uv_close((uv_handle_t *)&p->poll, on_closed);
  }
  return NULL;
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out, v;
  CHECK(napi_create_array_with_length(env, 5, &out));
  CHECK(napi_create_double(env, (double)g_read_errors, &v));
  CHECK(napi_set_element(env, out, 0, v));
  CHECK(napi_create_double(env, (double)g_write_errors, &v));
  CHECK(napi_set_element(env, out, 1, v));
  CHECK(napi_create_double(env, (double)g_write_again, &v));
  CHECK(napi_set_element(env, out, 2, v));
  CHECK(napi_create_int32(env, g_last_errno, &v));
  CHECK(napi_set_element(env, out, 3, v));
  CHECK(napi_create_double(env, (double)g_filtered, &v));
  CHECK(napi_set_element(env, out, 4, v));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
    {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
    {"readBatch", NULL, js_read_batch, NULL, NULL, NULL, napi_enumerable, NULL},
    {"writeBatch", NULL, js_write_batch, NULL, NULL, NULL, napi_enumerable, NULL},
    {"writeFrames", NULL, js_write_frames, NULL, NULL, NULL, napi_enumerable, NULL},
    {"pollStart", NULL, js_poll_start, NULL, NULL, NULL, napi_enumerable, NULL},
    {"pollStop", NULL, js_poll_stop, NULL, NULL, NULL, napi_enumerable, NULL},
    {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
