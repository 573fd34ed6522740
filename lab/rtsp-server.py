#!/usr/bin/python3
# RTSP server for one lab backend (sessionlb lab): GStreamer's RTSP server library driven through
# GObject introspection. Serves rtsp://ADDR:PORT/test, a live H.264 test pattern (and optionally
# PCMU audio), one media pipeline per client (not shared), RTP over UDP or interleaved TCP.
#
#   rtsp-server.py --port 8554 --id b1 [--address 0.0.0.0] [--audio]
# The backend id is printed at start; which backend served a session is seen on the wire (captures
# in the backends' namespaces) rather than in the media.
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


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

    loop = GLib.MainLoop()

    def stop(*_):
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, stop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, stop)
    print(f"rtsp-server {args.id}: listening on {args.address}:{args.port}{args.mount}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
