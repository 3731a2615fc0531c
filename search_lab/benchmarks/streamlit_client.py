"""A Streamlit client that speaks the browser's protocol, for load tests and benchmarks.

One :class:`StreamlitSession` is one browser tab without the browser: a websocket to
``/_stcore/stream`` carrying ``BackMsg`` / ``ForwardMsg`` protobufs, plus the HTTP requests the
frontend makes (XSRF cookie, file upload PUT/DELETE, thumbnails under ``/media``). It asks for
script runs the way the frontend does (a ``rerun_script`` with every shown widget's value),
reads the deltas of each run into :class:`Run`, and finds widgets by type and label, never by
their hashed ids.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Common_pb2 import FileURLs, UploadedFileInfo
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from urllib3.util.retry import Retry
from websockets.asyncio.client import ClientConnection, connect

XSRF_COOKIE = "_streamlit_xsrf"
STRING_WIDGETS = ("selectbox", "radio")  # widgets whose value is the chosen option's text
_ESCAPED = re.compile(r"\\(.)")  # Streamlit escapes markdown in captions: "\#1 a\.jpg"


class ProtocolError(RuntimeError):
    """The server answered in a way a browser would show as broken (or not at all)."""


@dataclass(frozen=True)
class Widget:
    """A widget shown in a run: its id (from the server), type, label and options."""

    id: str
    kind: str
    label: str
    options: tuple[str, ...] = ()


@dataclass
class Run:
    """The elements one script run sent, by delta path, and how the run finished."""

    elements: dict[tuple[int, ...], Element] = field(default_factory=dict)
    status: int | None = None

    def of_kind(self, kind: str) -> list[Element]:
        """The run's elements of one type (e.g. "imgs", "metric"), in page order."""
        return [self.elements[p] for p in sorted(self.elements) if self.elements[p].HasField(kind)]

    def widgets(self) -> list[Widget]:
        """Every widget the run showed (an element with a non-empty ``id``)."""
        found = []
        for element in self.elements.values():
            kind, proto = _inner(element)
            if getattr(proto, "id", ""):
                options = tuple(getattr(proto, "options", ()))
                found.append(Widget(proto.id, kind, proto.label, options))
        return found

    def widget(self, kind: str, label: str) -> Widget:
        """The one widget of ``kind`` whose label starts with ``label``."""
        hits = [w for w in self.widgets() if w.kind == kind and w.label.startswith(label)]
        if len(hits) != 1:
            raise ProtocolError(f"{len(hits)} {kind} widgets labelled {label!r} in the run")
        return hits[0]

    def captions(self) -> list[str]:
        """Image captions as the page shows them (markdown escapes removed), in page order."""
        return [
            _ESCAPED.sub(r"\1", img.caption) for e in self.of_kind("imgs") for img in e.imgs.imgs
        ]

    def media_urls(self) -> list[str]:
        """The ``/media/...`` URLs of the run's images (the browser fetches each)."""
        return [img.url for e in self.of_kind("imgs") for img in e.imgs.imgs if img.url]

    def metric(self, label: str) -> str | None:
        """The shown value of the metric labelled ``label`` (None if it is not shown)."""
        return next(
            (e.metric.body for e in self.of_kind("metric") if e.metric.label == label), None
        )

    def exceptions(self) -> list[str]:
        """Messages of the exception elements (tracebacks) the run showed."""
        return [f"{e.exception.type}: {e.exception.message}" for e in self.of_kind("exception")]


def _inner(element: Element) -> tuple[str, Any]:
    """An element's type name and message (e.g. ("selectbox", Selectbox)); ("", None) if unset."""
    kind = element.WhichOneof("type")
    return (kind, getattr(element, kind)) if kind else ("", None)


def _default_state(element: Element) -> WidgetState | None:
    """The value the frontend gives a newly shown widget (its default), for the kinds we drive."""
    kind, proto = _inner(element)
    state = WidgetState(id=proto.id)
    if kind in STRING_WIDGETS and proto.HasField("default"):
        state.string_value = proto.options[proto.default]
    elif kind == "slider":
        state.double_array_value.data.extend(proto.default)
    else:
        return None
    return state


class StreamlitSession:
    """One app session over the websocket; use as ``async with StreamlitSession(url) as s``."""

    def __init__(self, url: str, timeout_s: float = 120.0) -> None:
        self.url, self.timeout_s = url.rstrip("/"), timeout_s
        self.http = requests.Session()
        # A browser resends a request whose reused keep-alive connection the server had just
        # closed (uvicorn closes idle ones after 5 s); urllib3 does so only when told to.
        retry = Retry(total=1, connect=1, read=1, status=0, allowed_methods=None)
        self.http.mount("http://", HTTPAdapter(max_retries=retry))
        self.ws: ClientConnection | None = None
        self.session_id = ""
        self.page_hash = ""
        self.states: dict[str, WidgetState] = {}
        self.last: Run = Run()
        self.uploaded: FileURLs | None = None

    async def __aenter__(self) -> StreamlitSession:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> Run:
        """Get the XSRF cookie, connect the websocket and run the app's default page once."""
        reply = await asyncio.to_thread(self.http.get, f"{self.url}/_stcore/health", timeout=30)
        reply.raise_for_status()
        token = self.http.cookies.get(XSRF_COOKIE, "")
        self.ws = await connect(
            f"ws{self.url.removeprefix('http')}/_stcore/stream",
            subprotocols=["streamlit", token] if token else ["streamlit"],
            additional_headers={"Cookie": f"{XSRF_COOKIE}={token}"} if token else None,
            origin=self.url,
            max_size=None,
            ping_interval=None,  # a browser answers the server's pings but sends none
            open_timeout=self.timeout_s,
        )
        return await self.rerun()

    async def close(self) -> None:
        """Close the websocket and the HTTP connections."""
        if self.ws is not None:
            await self.ws.close()
        self.http.close()

    async def rerun(self, changed: WidgetState | None = None) -> Run:
        """Ask for a script run with every shown widget's value (``changed`` replacing its own)."""
        if changed is not None:
            self.states[changed.id] = changed
        msg = BackMsg()
        msg.rerun_script.page_script_hash = self.page_hash
        msg.rerun_script.widget_states.widgets.extend(self.states.values())
        msg.rerun_script.context_info.timezone = "UTC"
        msg.rerun_script.context_info.locale = "en-US"
        await self._send(msg)
        return await self._finished_run()

    async def choose(self, widget: Widget, option: str) -> Run:
        """Pick ``option`` in a select box or radio, as a click does; returns the new run."""
        if widget.kind not in STRING_WIDGETS or option not in widget.options:
            raise ProtocolError(f"{option!r} is not an option of {widget.kind} {widget.label!r}")
        return await self.rerun(WidgetState(id=widget.id, string_value=option))

    async def type_text(self, widget: Widget, text: str) -> Run:
        """Type ``text`` into a text input and press Enter; returns the new run."""
        if widget.kind != "text_input":
            raise ProtocolError(f"{widget.kind} {widget.label!r} is not a text input")
        return await self.rerun(WidgetState(id=widget.id, string_value=text))

    async def upload(self, widget: Widget, path: Path) -> Run:
        """Put ``path`` into a single-file uploader as a drop does; returns the run it starts.

        Like the frontend: ask for an upload URL over the websocket, PUT the file (multipart,
        with the XSRF header), DELETE the file it replaces, then rerun with the uploader's state.
        """
        data = path.read_bytes()
        urls = await self._file_urls(path.name)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        await self._http("put", urls.upload_url, files={"file": (path.name, data, mime)})
        if self.uploaded is not None:
            await self._http("delete", self.uploaded.delete_url)
        self.uploaded = urls
        state = WidgetState(id=widget.id)
        info = UploadedFileInfo(name=path.name, size=len(data), file_id=urls.file_id)
        info.file_urls.CopyFrom(urls)
        state.file_uploader_state_value.uploaded_file_info.append(info)
        return await self.rerun(state)

    async def fetch_media(self, run: Run) -> int:
        """GET every image of ``run`` as the browser does; returns the bytes received."""
        replies = await asyncio.gather(*(self._http("get", url) for url in run.media_urls()))
        return sum(len(reply.content) for reply in replies)

    async def _file_urls(self, name: str) -> FileURLs:
        """Ask the server for the URLs to upload one file to (``file_urls_request``)."""
        msg = BackMsg()
        request = msg.file_urls_request
        request.request_id, request.session_id = uuid.uuid4().hex, self.session_id
        request.file_names.append(name)
        await self._send(msg)
        async with asyncio.timeout(self.timeout_s):
            while True:
                reply = await self._receive()
                if reply.file_urls_response.response_id == request.request_id:
                    break
        response = reply.file_urls_response
        if response.error_msg or len(response.file_urls) != 1:
            raise ProtocolError(f"no upload URL for {name}: {response.error_msg or 'none'}")
        return response.file_urls[0]

    async def _http(self, method: str, path: str, **kwargs: object) -> requests.Response:
        """One HTTP request to the app (in a thread), with the XSRF header; raises on an error."""
        headers = {"X-Xsrftoken": self.http.cookies.get(XSRF_COOKIE, "")}
        url = path if path.startswith("http") else f"{self.url}{path}"
        reply = await asyncio.to_thread(
            self.http.request, method, url, headers=headers, timeout=self.timeout_s, **kwargs
        )
        if not reply.ok:
            raise ProtocolError(f"{method.upper()} {path}: HTTP {reply.status_code}")
        return reply

    async def _send(self, msg: BackMsg) -> None:
        if self.ws is None:
            raise ProtocolError("the session is not open")
        await self.ws.send(msg.SerializeToString())

    async def _receive(self) -> ForwardMsg:
        if self.ws is None:
            raise ProtocolError("the session is not open")
        msg = ForwardMsg()
        msg.ParseFromString(await self.ws.recv())
        return msg

    async def _finished_run(self) -> Run:
        """Read messages until a script run finishes (not one cut short by a newer rerun)."""
        run, started = Run(), False  # messages before our run's new_session are an older run's
        async with asyncio.timeout(self.timeout_s):
            while True:
                msg = await self._receive()
                kind = msg.WhichOneof("type")
                if kind == "new_session":
                    run, started = Run(), True
                    self.page_hash = msg.new_session.page_script_hash
                    self.session_id = msg.new_session.initialize.session_id or self.session_id
                elif kind == "delta" and msg.delta.HasField("new_element"):
                    run.elements[tuple(msg.metadata.delta_path)] = msg.delta.new_element
                elif kind == "script_finished" and started:
                    if msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                        continue
                    run.status = msg.script_finished
                    break
        self._keep_shown_widgets(run)
        self.last = run
        return run

    def _keep_shown_widgets(self, run: Run) -> None:
        """Forget widgets the run no longer shows and give new ones their defaults."""
        shown = {}
        for element in run.elements.values():
            widget_id = getattr(_inner(element)[1], "id", "")
            if not widget_id:
                continue
            state = self.states.get(widget_id) or _default_state(element)
            if state is not None:
                shown[widget_id] = state
        self.states = shown
