/*
 * Conformance harness in C for the sessionlb engine compiled to C by wasm2c (wabt), written from
 * docs/abi.md: it reads a vector's calls.txt and input.pcap, makes the calls, feeds the packets
 * through descriptors in the packet arena and writes the outputs (backend-K.pcap, client.pcap,
 * packets.txt, events.txt, state.txt) into OUT_DIR, for the test to compare byte for byte.
 *
 *   harness VECTOR_DIR OUT_DIR
 *   harness VECTOR_DIR --bench N     run the vector once untimed, then N times (a new instance each), print
 *                                    {"packets":P,"seconds":S} with S the time spent in process()
 *
 * Build (portable/c/build.sh does this): wasm2c -n sessionlb build/sessionlb-nosimd.wasm -o
 * sessionlb.c, then gcc -O2 harness.c sessionlb.c wasm-rt-impl.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sessionlb.h"

typedef Z_sessionlb_instance_t Inst;

/* Every export the harness knows, declared weak so that a module without one of them still links:
 * calling an absent export is an error at run time, as a missing export is for any host. */
#define U32_EXPORTS(X)                                                                             \
  X(abi_version, 0) X(batch_size, 0) X(headroom, 0) X(headroom_needed, 0) X(desc_ptr, 0)          \
  X(arena_ptr, 0) X(arena_size, 0) X(io_ptr, 0) X(io_size, 0) X(scratch_ptr, 0) X(scratch_size, 0) \
  X(counters_ptr, 0) X(drops_ptr, 0) X(passes_ptr, 0) X(backend_stats_ptr, 0) X(events_ptr, 0)    \
  X(event_capacity, 0) X(event_head_ptr, 0) X(ring_ptr, 0) X(backend_table_ptr, 0)                 \
  X(flow_table_ptr, 0) X(flow_table_entries, 0) X(session_table_ptr, 0) X(session_capacity, 0)     \
  X(session_count, 0) X(flow_count, 0) X(rtsp_result_size, 0) X(init, 7) X(config_vip, 10)        \
  X(config_backend, 6) X(config_commit, 2) X(config_vip_sessions, 5) X(process, 1) X(expire, 2)    \
  X(flush_flows, 2) X(flow_hash, 1) X(flow_hash_sym, 1) X(csum, 2) X(null_pass, 1) X(hash_keys, 2)
#define VOID_EXPORTS(X)                                                                            \
  X(config_global, 4) X(config_live, 1) X(config_timeouts, 7) X(config_events, 1)                 \
  X(config_vip_ports, 2) X(set_backend_state, 3) X(config_backend_sessions, 2)                    \
  X(config_sessions, 3) X(flush_sessions, 1)

#define A0
#define A1 , u32
#define A2 A1, u32
#define A3 A2, u32
#define A4 A3, u32
#define A5 A4, u32
#define A6 A5, u32
#define A7 A6, u32
#define A8 A7, u32
#define A9 A8, u32
#define A10 A9, u32
#define DECL_U32(name, n) u32 Z_sessionlbZ_##name(Inst* A##n) __attribute__((weak));
#define DECL_VOID(name, n) void Z_sessionlbZ_##name(Inst* A##n) __attribute__((weak));
U32_EXPORTS(DECL_U32)
VOID_EXPORTS(DECL_VOID)
void Z_sessionlbZ_config_hash_key(Inst*, u64, u64) __attribute__((weak));

typedef struct {
  const char* name;
  int nargs;
  int returns; /* 1: u32 result */
  void (*fn)(void);
} Export;

#define ROW_U32(name, n) {#name, n, 1, (void (*)(void))Z_sessionlbZ_##name},
#define ROW_VOID(name, n) {#name, n, 0, (void (*)(void))Z_sessionlbZ_##name},
static const Export EXPORTS[] = {U32_EXPORTS(ROW_U32) VOID_EXPORTS(ROW_VOID){NULL, 0, 0, NULL}};

static void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "harness: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

/* Calls a u32-argument export with up to 10 arguments; returns its result (0 for void ones). */
static u32 invoke(Inst* in, const Export* e, const u32* a) {
  typedef u32 (*R0)(Inst*);
  typedef u32 (*R1)(Inst*, u32);
  typedef u32 (*R2)(Inst*, u32, u32);
  typedef u32 (*R5)(Inst*, u32, u32, u32, u32, u32);
  typedef u32 (*R6)(Inst*, u32, u32, u32, u32, u32, u32);
  typedef u32 (*R7)(Inst*, u32, u32, u32, u32, u32, u32, u32);
  typedef u32 (*R10)(Inst*, u32, u32, u32, u32, u32, u32, u32, u32, u32, u32);
  typedef void (*V1)(Inst*, u32);
  typedef void (*V2)(Inst*, u32, u32);
  typedef void (*V3)(Inst*, u32, u32, u32);
  typedef void (*V4)(Inst*, u32, u32, u32, u32);
  typedef void (*V7)(Inst*, u32, u32, u32, u32, u32, u32, u32);
  if (e->returns) {
    switch (e->nargs) {
      case 0: return ((R0)e->fn)(in);
      case 1: return ((R1)e->fn)(in, a[0]);
      case 2: return ((R2)e->fn)(in, a[0], a[1]);
      case 5: return ((R5)e->fn)(in, a[0], a[1], a[2], a[3], a[4]);
      case 6: return ((R6)e->fn)(in, a[0], a[1], a[2], a[3], a[4], a[5]);
      case 7: return ((R7)e->fn)(in, a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
      case 10: return ((R10)e->fn)(in, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]);
    }
  } else {
    switch (e->nargs) {
      case 1: ((V1)e->fn)(in, a[0]); return 0;
      case 2: ((V2)e->fn)(in, a[0], a[1]); return 0;
      case 3: ((V3)e->fn)(in, a[0], a[1], a[2]); return 0;
      case 4: ((V4)e->fn)(in, a[0], a[1], a[2], a[3]); return 0;
      case 7: ((V7)e->fn)(in, a[0], a[1], a[2], a[3], a[4], a[5], a[6]); return 0;
    }
  }
  die("export %s: no call shape for %d arguments", e->name, e->nargs);
  return 0;
}

/* ---- little-endian memory access (wasm memory is little-endian; so are the files) ---------- */

static u32 rd32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24; }
static u32 rd16(const uint8_t* p) { return p[0] | p[1] << 8; }
static u64 rd64(const uint8_t* p) { return rd32(p) | (u64)rd32(p + 4) << 32; }
static void wr32(uint8_t* p, u32 v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }
static void wr16(uint8_t* p, u32 v) { p[0] = v; p[1] = v >> 8; }

static uint8_t* read_file(const char* path, size_t* len) {
  FILE* f = fopen(path, "rb");
  if (!f) die("cannot open %s: %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t* buf = malloc(n + 1);
  if (!buf || fread(buf, 1, n, f) != (size_t)n) die("cannot read %s", path);
  buf[n] = 0;
  fclose(f);
  *len = n;
  return buf;
}

/* ---- growable byte buffers for the outputs ------------------------------------------------ */

typedef struct {
  uint8_t* p;
  size_t n, cap;
} Buf;

static void put(Buf* b, const void* src, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 4096;
    b->p = realloc(b->p, b->cap);
    if (!b->p) die("out of memory");
  }
  memcpy(b->p + b->n, src, n);
  b->n += n;
}

static void putf(Buf* b, const char* fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  put(b, tmp, n);
}

static void pcap_header(Buf* b, int nanos) {
  uint8_t h[24] = {0};
  wr32(h, nanos ? 0xa1b23c4d : 0xa1b2c3d4);
  wr16(h + 4, 2);
  wr16(h + 6, 4);
  wr32(h + 16, 262144);
  wr32(h + 20, 1); /* every forwarded frame is Ethernet */
  put(b, h, 24);
}

static void write_out(const char* dir, const char* name, const Buf* b) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE* f = fopen(path, "wb");
  if (!f || (b->n && fwrite(b->p, 1, b->n, f) != b->n) || fclose(f)) die("cannot write %s", path);
}

/* ---- the input capture -------------------------------------------------------------------- */

typedef struct {
  u32 ts_sec, ts_frac, caplen, wirelen;
  size_t off;
} Rec;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Runs the vector once. out_dir NULL: write nothing. Adds the seconds spent in process(). */
static u32 run(const char* calls_text, const uint8_t* pcap, size_t pcap_len, const char* out_dir, double* process_s) {
  if (pcap_len < 24) die("input.pcap is too short");
  u32 magic = rd32(pcap);
  if (magic != 0xa1b2c3d4 && magic != 0xa1b23c4d) die("input.pcap is not a little-endian classic pcap");
  int nanos = magic == 0xa1b23c4d;
  u32 linktype = rd32(pcap + 20);
  size_t nrec = 0, cap = 1024;
  Rec* recs = malloc(cap * sizeof(Rec));
  for (size_t off = 24; off + 16 <= pcap_len;) {
    if (nrec == cap) recs = realloc(recs, (cap *= 2) * sizeof(Rec));
    Rec* r = &recs[nrec++];
    r->ts_sec = rd32(pcap + off);
    r->ts_frac = rd32(pcap + off + 4);
    r->caplen = rd32(pcap + off + 8);
    r->wirelen = rd32(pcap + off + 12);
    r->off = off + 16;
    if (r->off + r->caplen > pcap_len) die("input.pcap: last record cut short");
    off = r->off + r->caplen;
  }

  Inst inst;
  Z_sessionlb_instantiate(&inst);
  Inst* in = &inst;
#define MEM (Z_sessionlbZ_memory(in)->data) /* re-read after every call: init grows memory */
  size_t next = 0;
  u32 backends = 0;
  Buf* outs = NULL;
  Buf client = {0}, packets = {0}, events = {0}, state = {0};
  int ended = 0;

  char* text = strdup(calls_text);
  int ln = 0;
  for (char* line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    ln++;
    while (*line == ' ' || *line == '\t') line++;
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ')) line[--len] = 0;
    if (!*line || *line == '#') continue;
    char* words[16] = {0};
    int nw = 0;
    for (char* w = strtok_r(line, " ", &line); w && nw < 16; w = strtok_r(NULL, " ", &line)) words[nw++] = w;
    if (nw == 0) continue;
    if (!strcmp(words[0], "call")) {
      if (nw < 2) die("calls.txt: call without a name");
      const char* name = words[1];
      int eq = -1;
      for (int i = 2; i < nw; i++)
        if (!strcmp(words[i], "=")) eq = i;
      int nargs = (eq < 0 ? nw : eq) - 2;
      u32 got;
      if (!strcmp(name, "config_hash_key")) {
        if (!Z_sessionlbZ_config_hash_key) die("the module has no export config_hash_key");
        Z_sessionlbZ_config_hash_key(in, strtoull(words[2], NULL, 10), strtoull(words[3], NULL, 10));
        got = 0;
      } else {
        const Export* e = EXPORTS;
        while (e->name && strcmp(e->name, name)) e++;
        if (!e->name) die("calls.txt: export \"%s\" is not known to this harness (docs/abi.md)", name);
        if (!e->fn) die("the module has no export \"%s\"", name);
        if (nargs != e->nargs) die("calls.txt: %s takes %d arguments, the line has %d", name, e->nargs, nargs);
        u32 a[10];
        for (int i = 0; i < nargs; i++) a[i] = (u32)strtoul(words[2 + i], NULL, 10);
        got = invoke(in, e, a);
        if (!strcmp(name, "config_commit")) {
          backends = a[1];
          outs = calloc(backends ? backends : 1, sizeof(Buf));
          for (u32 k = 0; k < backends; k++) pcap_header(&outs[k], nanos);
          pcap_header(&client, nanos);
        }
      }
      if (eq >= 0 && eq + 1 < nw) {
        u32 want = (u32)strtoul(words[eq + 1], NULL, 10);
        if (got != want) die("calls.txt: %s returned %" PRIu32 ", the vector expects %" PRIu32, name, got, want);
      }
    } else if (!strcmp(words[0], "write")) {
      if (nw != 4) die("calls.txt: write REGION OFFSET HEX");
      u32 base;
      if (!strcmp(words[1], "scratch")) base = Z_sessionlbZ_scratch_ptr(in);
      else if (!strcmp(words[1], "ring")) base = Z_sessionlbZ_ring_ptr(in);
      else die("calls.txt: unknown region %s", words[1]);
      uint8_t* dst = MEM + base + strtoul(words[2], NULL, 10);
      const char* h = words[3];
      for (size_t i = 0; h[2 * i]; i++) {
        int hi = hexval(h[2 * i]), lo = hexval(h[2 * i + 1]);
        if (hi < 0 || lo < 0) die("calls.txt: bad hex");
        dst[i] = hi << 4 | lo;
      }
    } else if (!strcmp(words[0], "batch")) {
      u32 n = (u32)strtoul(words[1], NULL, 10);
      if (!outs) die("calls.txt: batch before config_commit");
      if (n > Z_sessionlbZ_batch_size(in)) die("calls.txt: batch larger than batch_size()");
      if (next + n > nrec) die("calls.txt: the input has only %zu packets", nrec);
      u32 d = Z_sessionlbZ_desc_ptr(in), hr = Z_sessionlbZ_headroom(in);
      u32 cursor = Z_sessionlbZ_arena_ptr(in), end = cursor + Z_sessionlbZ_arena_size(in);
      uint8_t* m = MEM;
      for (u32 i = 0; i < n; i++) {
        const Rec* r = &recs[next + i];
        u32 data = cursor + hr;
        if ((u64)data + r->caplen > end) die("a batch does not fit the arena");
        memcpy(m + data, pcap + r->off, r->caplen);
        cursor = (data + r->caplen + 7) & ~7u;
        uint8_t* p = m + d + 32 * i;
        wr32(p, data);
        wr32(p + 4, r->caplen);
        wr32(p + 8, r->wirelen);
        wr16(p + 12, 0);
        wr16(p + 14, linktype);
        wr32(p + 16, r->ts_sec);
        wr32(p + 20, nanos ? r->ts_frac : r->ts_frac * 1000);
        wr32(p + 24, 0);
        wr32(p + 28, 0);
      }
      double t0 = now_s();
      u32 got = Z_sessionlbZ_process(in, n);
      *process_s += now_s() - t0;
      if (got != n) die("process(%u) returned %u", n, got);
      m = MEM;
      for (u32 i = 0; i < n; i++) {
        const uint8_t* p = m + d + 32 * i;
        u32 verdict = p[24], egress = rd16(p + 26);
        putf(&packets, "%u %u %u %u\n", verdict, p[25], egress, rd32(p + 28));
        if (verdict != 1 && verdict != 2) continue;
        Buf* o = verdict == 2 ? &client : egress < backends ? &outs[egress] : NULL;
        if (!o) die("egress %u is not a backend", egress);
        u32 caplen = rd32(p + 4), tsn = rd32(p + 20);
        uint8_t h[16];
        wr32(h, rd32(p + 16));
        wr32(h + 4, nanos ? tsn : tsn / 1000);
        wr32(h + 8, caplen);
        wr32(h + 12, rd32(p + 8));
        put(o, h, 16);
        put(o, m + rd32(p), caplen);
      }
      next += n;
    } else if (!strcmp(words[0], "events")) {
      uint8_t* m = MEM;
      u32 hp = Z_sessionlbZ_event_head_ptr(in), cap = Z_sessionlbZ_event_capacity(in), base = Z_sessionlbZ_events_ptr(in);
      u32 head = rd32(m + hp), tail = rd32(m + hp + 4);
      for (; tail != head; tail++) {
        const uint8_t* e = m + base + (tail & (cap - 1)) * 64;
        for (int i = 0; i < 64; i++) putf(&events, "%02x", e[i]);
        put(&events, "\n", 1);
      }
      wr32(m + hp + 4, tail);
    } else if (!strcmp(words[0], "end")) {
      uint8_t* m = MEM;
      const struct {
        const char* name;
        u32 ptr, n;
      } arrays[] = {{"counters", Z_sessionlbZ_counters_ptr(in), 64}, {"drops", Z_sessionlbZ_drops_ptr(in), 32}, {"passes", Z_sessionlbZ_passes_ptr(in), 16}};
      for (int k = 0; k < 3; k++) {
        putf(&state, "%s", arrays[k].name);
        for (u32 i = 0; i < arrays[k].n; i++) putf(&state, " %" PRIu64, rd64(m + arrays[k].ptr + 8 * i));
        put(&state, "\n", 1);
      }
      u32 bs = Z_sessionlbZ_backend_stats_ptr(in);
      for (u32 k = 0; k < backends; k++) {
        putf(&state, "backend %u", k);
        for (u32 i = 0; i < 8; i++) putf(&state, " %" PRIu64, rd64(m + bs + 64 * k + 8 * i));
        put(&state, "\n", 1);
      }
      putf(&state, "flow_count %u\nsession_count %u\n", Z_sessionlbZ_flow_count(in), Z_sessionlbZ_session_count(in));
      ended = 1;
    } else {
      die("calls.txt line %d: unknown step \"%s\"", ln, words[0]);
    }
  }
  if (!ended) die("calls.txt has no \"end\"");
  if (next != nrec) die("only %zu of %zu input packets were processed", next, nrec);
  if (out_dir) {
    mkdir(out_dir, 0755);
    char name[64];
    for (u32 k = 0; k < backends; k++) {
      snprintf(name, sizeof name, "backend-%u.pcap", k);
      write_out(out_dir, name, &outs[k]);
    }
    write_out(out_dir, "client.pcap", &client);
    write_out(out_dir, "packets.txt", &packets);
    write_out(out_dir, "events.txt", &events);
    write_out(out_dir, "state.txt", &state);
  }
  for (u32 k = 0; k < backends; k++) free(outs[k].p);
  free(outs);
  free(client.p);
  free(packets.p);
  free(events.p);
  free(state.p);
  free(text);
  free(recs);
  Z_sessionlb_free(&inst);
  return (u32)next;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: harness VECTOR_DIR OUT_DIR | harness VECTOR_DIR --bench N\n");
    return 2;
  }
  char path[4096];
  size_t calls_len, pcap_len;
  snprintf(path, sizeof path, "%s/calls.txt", argv[1]);
  char* calls = (char*)read_file(path, &calls_len);
  snprintf(path, sizeof path, "%s/input.pcap", argv[1]);
  uint8_t* pcap = read_file(path, &pcap_len);
  wasm_rt_init();
  Z_sessionlb_init_module();
  double process_s = 0;
  if (!strcmp(argv[2], "--bench")) {
    int n = argc > 3 ? atoi(argv[3]) : 1;
    u64 packets = 0;
    double warm = 0;
    run(calls, pcap, pcap_len, NULL, &warm); /* warm-up, not timed, as the JavaScript harness does */
    for (int i = 0; i < n; i++) packets += run(calls, pcap, pcap_len, NULL, &process_s);
    printf("{\"packets\":%" PRIu64 ",\"seconds\":%.9f}\n", packets, process_s);
  } else {
    run(calls, pcap, pcap_len, argv[2], &process_s);
  }
  wasm_rt_free();
  free(calls);
  free(pcap);
  return 0;
}
