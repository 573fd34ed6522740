#!/usr/bin/python3
# RTSP server for one lab backend (sessionlb lab): GStreamer's RTSP server library driven through
# GObject introspection. Serves rtsp://ADDR:PORT/test, a live H.264 test pattern (and optionally
# PCMU audio), one media pipeline per client (not shared), RTP over UDP or interleaved TCP.
#
#   rtsp-server.py --port 8554 --id b1 [--address 0.0.0.0] [--audio] [--handoff-socket PATH]
# With --handoff-socket it also takes connections handed off to this backend (TCP handoff,
# docs/handoff.md): the handoff agent restores the client's connection and sends the descriptor with
# a JSON line {client, clientPort, ...} in one datagram (SCM_RIGHTS) to the Unix datagram socket at
# PATH; the server adopts it with GstRTSPServer's transfer_connection, the library's own API for a
# connection accepted elsewhere. The request bytes the front end held are already in the socket's
# receive queue, so no initial buffer is given.
# The backend id is printed at start; which backend served a session is seen on the wire (captures
# in the backends' namespaces) rather than in the media.
import argparse
import json
import os
import signal
import socket
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtspServer  # noqa: E402


def adopt_handoffs(server, path: str, ident: str):
    """Receives handed-off connections on a Unix datagram socket and gives them to the server."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.setblocking(False)
    counts = {"adopted": 0, "refused": 0}

    def on_ready(_fd, _cond):
        while True:
            try:
                msg, fds, _flags, _addr = socket.recv_fds(rx, 4096, 4)
            except BlockingIOError:
                return True
            for extra in fds[1:]:
                os.close(extra)
            if not fds:
                continue
            fd = fds[0]
            try:
                meta = json.loads(msg.decode())
                gsock = Gio.Socket.new_from_fd(fd)
                ok = server.transfer_connection(gsock, meta["client"], int(meta["clientPort"]), None)
            except Exception as e:  # noqa: BLE001 (a bad datagram must not stop the server)
                print(f"rtsp-server {ident}: handed-off connection refused: {e}", file=sys.stderr, flush=True)
                os.close(fd)
                counts["refused"] += 1
                continue
            if ok:
                counts["adopted"] += 1
            else:
                counts["refused"] += 1
                print(f"rtsp-server {ident}: transfer_connection refused {meta}", file=sys.stderr, flush=True)

    GLib.io_add_watch(rx.fileno(), GLib.PRIORITY_DEFAULT, GLib.IOCondition.IN, on_ready)
    return rx, counts


def launch_line(audio: bool) -> str:
    video = (
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=512 "
        "! rtph264pay name=pay0 pt=96 config-interval=1"
    )
    parts = [video]
    if audio:
        parts.append("audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 pt=0")
    return "( " + " ".join(parts) + " )"


def main() -> int:
    ap = argparse.ArgumentParser(description="lab RTSP server (GStreamer RTSP server)")
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--address", default="0.0.0.0")
    ap.add_argument("--id", required=True, help="backend id (log lines)")
    ap.add_argument("--mount", default="/test")
    ap.add_argument("--audio", action="store_true", help="add a PCMU audio stream (pay1)")
    ap.add_argument("--handoff-socket", help="Unix datagram socket where the handoff agent passes connections (docs/handoff.md)")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args.audio))
    factory.set_shared(False)
    server.get_mount_points().add_factory(args.mount, factory)

    if server.attach(None) == 0:
        print(f"rtsp-server {args.id}: cannot listen on {args.address}:{args.port}", file=sys.stderr)
        return 1

    handoff = adopt_handoffs(server, args.handoff_socket, args.id) if args.handoff_socket else None

    loop = GLib.MainLoop()

    def stop(*_):
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, stop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, stop)
    print(f"rtsp-server {args.id}: listening on {args.address}:{args.port}{args.mount}", flush=True)
    loop.run()
    if handoff:
        print(f"rtsp-server {args.id}: handed-off connections {json.dumps(handoff[1])}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
