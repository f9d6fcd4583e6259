"""The web console's aiohttp application: sign-in, sessions, CSRF, security headers, language, and
the page modules of :mod:`hub.web.pages`.

Every request goes through :meth:`WebConsole.middleware`:

* the session is read from its cookie (:mod:`hub.web.sessions`) and the person looked up in the
  config again (a removed user is signed out); their rights come from :func:`hub.security.user_access`,
  the table ``anninh acl`` writes into the broker's ACL;
* a page needs a signed-in person (else: the sign-in page); a POST needs the session's CSRF token
  (form field ``csrf`` or header ``X-CSRF-Token``) and, when the browser sends one, an ``Origin`` of
  this console;
* the handler runs in the reader's language (``hub.i18n.use_language``);
* every answer carries the security headers: a Content-Security-Policy without inline scripts or
  styles, ``X-Frame-Options: DENY``, ``nosniff``, referrer only to itself, and ``Cache-Control: no-store`` on
  everything but the vendored static files.

Without ``users:`` in the config (where the broker trusts every loopback client) the console signs
nobody in and gives everyone the installer's rights, and only on loopback: bound beyond it, it
refuses to start.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from hub.i18n import LANGUAGES, _, format_number, language, ngettext, normalize, tr, use_language
from hub.security import Access, user_access
from hub.web.live import LiveFeed, View
from hub.web.model import ROLE_TEXT
from hub.web.pages import ACCESS, Page, load_pages
from hub.web.sessions import COOKIE, Session, SessionStore, Throttle, check_password, csrf_ok

SESSION = web.RequestKey("anninh_session", Session)
NEW_SESSION = web.RequestKey("anninh_new_session", Session)

if TYPE_CHECKING:
    from hub.core import Hub

log = logging.getLogger("hub.web")

HERE = Path(__file__).parent
PUBLIC = ("/login", "/lang", "/static/")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebError(Exception):
    """The console cannot start as configured; the message says what to change."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebConsole:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.config = hub.config
        web_cfg = self.config.web
        self.tls = web_cfg.cert_file is not None
        self.sessions = SessionStore(self.config.data_dir / "web" / "session.key", web_cfg.session_hours * 3600)
        self.throttle = Throttle()
        self.feed = LiveFeed(hub)
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                      trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
        self.env.globals.update(_=_, tr=tr, ngettext=ngettext, format_number=format_number)
        tiles = web_cfg.tile_url
        self.tile_origin = ""
        if tiles:
            parts = urlsplit(tiles)
            self.tile_origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
        self.csp = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:"
                    + (f" {self.tile_origin}" if self.tile_origin else "")
                    + "; connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                      "base-uri 'none'")
        self.pages: list[Page] = load_pages()
        self.app = web.Application(middlewares=[self.middleware], client_max_size=64 * 1024)
        r = self.app.router
        r.add_get("/login", self.login_form)
        r.add_post("/login", self.login)
        r.add_post("/logout", self.logout)
        r.add_post("/lang", self.set_lang)
        r.add_get("/ws", self.websocket)
        r.add_static("/static", HERE / "static", append_version=False)
        for page in self.pages:
            page.setup(r, self)
        self.runner: web.AppRunner | None = None
        self.url = ""

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> str:
        """Listen on ``web.bind``:``web.port``; returns the console's address."""
        cfg = self.config.web
        if not self.config.users and not is_loopback(cfg.bind):
            raise WebError(f"web.bind is {cfg.bind} but the config has no users: to sign in with; without "
                           "users the console only listens on 127.0.0.1")
        context = None
        if cfg.cert_file and cfg.key_file:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(self._path(cfg.cert_file), self._path(cfg.key_file))
            except (OSError, ssl.SSLError) as exc:
                raise WebError(f"web.cert_file / web.key_file: cannot load them ({exc})") from None
        elif not is_loopback(cfg.bind):
            log.warning("the web console listens on %s without TLS: passwords and pages cross the network in "
                        "clear; give it web.cert_file and web.key_file", cfg.bind)
        self.feed.install()
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, cfg.bind, cfg.port, ssl_context=context, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self.runner.cleanup()
            self.runner = None
            raise WebError(f"cannot listen on {cfg.bind}:{cfg.port}: {exc.strerror or exc}") from None
        port = cfg.port
        sockets = getattr(site._server, "sockets", None)  # the port the system gave for web.port: 0
        if sockets:
            port = sockets[0].getsockname()[1]
        host = "127.0.0.1" if cfg.bind in ("0.0.0.0", "::") else cfg.bind
        host = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if context else 'http'}://{host}:{port}/"
        log.info("web console on %s", self.url)
        return self.url

    def banner(self) -> str:
        """The line ``anninh run`` and ``anninh demo`` print: where to open the console."""
        text = tr("Web console: {url}", url=self.url)
        if not self.tls and not is_loopback(self.config.web.bind):
            text += "\n" + tr("Warning: the web console listens on {bind} without TLS; passwords cross the network "
                              "in clear (set web.cert_file and web.key_file).", bind=self.config.web.bind)
        return text

    def _path(self, name: str) -> str:
        p = Path(name)
        return str(p if p.is_absolute() else self.config.path.parent / p)

    async def stop(self) -> None:
        await self.feed.close()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # ---------------------------------------------------------------- every request
    def account(self, session: Session | None) -> Any:
        if session is None or session.user is None:
            return None
        return next((u for u in self.config.users if u.name == session.user), None)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        static = path.startswith("/static/")
        session = None if static else self.sessions.decode(request.cookies.get(COOKIE))
        if session is not None:
            request[SESSION] = session
        account = self.account(session)
        if not self.config.users:
            access: Access | None = user_access(self.config, None)
        else:
            access = user_access(self.config, account) if account is not None else None
        if access is not None:
            request[ACCESS] = access
        lang = session.lang if session is not None else language()
        with use_language(lang):
            response = await self._answer(request, handler, session, access)
        self._headers(response, static)
        new = request.get(NEW_SESSION)
        if new is not None:
            response.set_cookie(COOKIE, self.sessions.encode(new), httponly=True, samesite="Strict",
                                secure=self.tls, path="/", max_age=int(self.sessions.lifetime))
        return response

    async def _answer(self, request: web.Request, handler: Handler, session: Session | None,
                      access: Access | None) -> web.StreamResponse:
        """The checks every request passes, then the handler (in the reader's language)."""
        path = request.path
        try:
            if request.method not in ("GET", "HEAD") or path == "/ws":
                self._check_origin(request)
            if request.method == "POST":
                token = request.headers.get("X-CSRF-Token")
                if token is None and request.content_type == "application/x-www-form-urlencoded":
                    token = str((await request.post()).get("csrf", ""))
                if not csrf_ok(session, token):
                    raise web.HTTPForbidden(text=_("CSRF token missing or wrong: reload the page."))
            if access is None and not any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC):
                if request.method == "GET" and path != "/ws":
                    raise web.HTTPSeeOther("/login")
                raise web.HTTPForbidden(text=_("Sign in first."))
            return await handler(request)
        except web.HTTPException as exc:  # answered as a plain response, so the headers apply
            return web.Response(status=exc.status, reason=exc.reason, headers=exc.headers, text=exc.text)

    def _check_origin(self, request: web.Request) -> None:
        origin = request.headers.get("Origin")
        if origin is None:
            return
        if urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text=_("A request from another site is refused."))

    def _headers(self, response: web.StreamResponse, static: bool) -> None:
        if not response.prepared:  # a WebSocket or a download already has them (:meth:`secure`)
            self.secure(response, static)

    def secure(self, response: web.StreamResponse, static: bool = False) -> None:
        """The security headers; a handler that streams its answer calls this before ``prepare``."""
        h = response.headers
        h["Content-Security-Policy"] = self.csp
        h["X-Frame-Options"] = "DENY"
        h["X-Content-Type-Options"] = "nosniff"
        h["Referrer-Policy"] = "same-origin"  # with no-referrer, Chrome sends "Origin: null" on our own forms
        h["Cache-Control"] = "public, max-age=3600" if static else "no-store"
        if self.tls:
            h["Strict-Transport-Security"] = "max-age=31536000"

    # ---------------------------------------------------------------- rendering
    def session_of(self, request: web.Request) -> Session:
        """The request's session, a new anonymous one if it has none (set as a cookie on the answer)."""
        session = request.get(NEW_SESSION) or request.get(SESSION)
        if session is None:
            session = Session.new(language())
            request[NEW_SESSION] = session
        return session

    def render(self, request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
        access = request.get(ACCESS)
        session = self.session_of(request)
        nav = [p for p in self.pages if p.menu and access is not None and p.visible(access)]
        text = self.env.get_template(template).render(
            request=request, access=access, csrf=session.csrf, lang=language(), languages=LANGUAGES,
            hub_name=self.config.hub.name, nav=nav, signed_in=access is not None and access.user is not None,
            path=request.path, role_text=_(ROLE_TEXT[access.role]) if access is not None else "", **context)
        return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")

    def refuse(self, request: web.Request, message: str, status: int = 403) -> web.Response:
        return self.render(request, "error.html", status=status, message=message, live=None)

    # ---------------------------------------------------------------- sign-in, sign-out, language
    async def login_form(self, request: web.Request) -> web.StreamResponse:
        if ACCESS in request:
            raise web.HTTPSeeOther("/")
        return self.render(request, "login.html", error=None, name="", live=None)

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        name = str(form.get("name", ""))[:64]
        password = str(form.get("password", ""))[:256]
        address = request.remote or "?"
        keys = (f"user:{name}", f"addr:{address}")
        wait = self.throttle.wait(*keys)
        if wait > 0:
            log.warning("web sign-in throttled for %r from %s", name, address)
            return self.render(request, "login.html", status=429, name=name, live=None,
                               error=tr("Too many failed attempts: try again in {seconds} s.",
                                        seconds=int(wait) + 1))
        account = check_password(self.config, name, password) if self.config.users else None
        if account is None:
            self.throttle.failed(*keys)
            log.warning("web sign-in refused for %r from %s", name, address)
            return self.render(request, "login.html", status=401, name=name, live=None,
                               error=_("Wrong user name or password."))
        self.throttle.succeeded(keys[0])
        old = request.get(SESSION)
        if old is not None:
            self.sessions.revoke(old)  # a new session id at sign-in (no fixation)
        new = Session.new(old.lang if old is not None else language())
        new.user = account.name
        request[NEW_SESSION] = new
        log.info("web sign-in: %s from %s", account.name, address)
        raise web.HTTPSeeOther("/")

    async def logout(self, request: web.Request) -> web.StreamResponse:
        old = request.get(SESSION)
        if old is not None:
            self.sessions.revoke(old)
            await self.feed.drop(old.sid)  # its open pages stop getting updates too
        request[NEW_SESSION] = Session.new(old.lang if old is not None else language())
        raise web.HTTPSeeOther("/login")

    async def set_lang(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        try:
            lang = normalize(str(form.get("lang", "")))
        except ValueError:
            raise web.HTTPBadRequest(text=_("Unknown language.")) from None
        session = request[SESSION]  # the CSRF check needed one
        request[NEW_SESSION] = Session(sid=session.sid, csrf=session.csrf, user=session.user, lang=lang,
                                         since=session.since)
        back = str(form.get("back", "/"))
        raise web.HTTPSeeOther(back if back.startswith("/") and not back.startswith("//") else "/")

    # ---------------------------------------------------------------- live updates
    async def websocket(self, request: web.Request) -> web.StreamResponse:
        access = request[ACCESS]
        q = request.query
        page = q.get("view", "overview")
        site = q.get("site") or None
        pages = ("overview", "site", "events", "export", "tickets")
        if page not in pages or (site is not None and not access.sees_site(site)):
            raise web.HTTPForbidden(text=_("Not allowed."))
        if page == "events" and not access.events:
            raise web.HTTPForbidden(text=_("Not allowed."))
        view = View(page, site, q.get("device") or None, q.get("type") or None)
        session = request.get(SESSION)
        return await self.feed.serve(request, access, session.lang if session else language(), view,
                                     session.sid if session else "")


async def start_console(hub: Hub) -> WebConsole | None:
    """Start the console of ``hub`` if ``web.enabled``; a console that cannot start is logged and left
    out (the hub goes on watching the devices)."""
    if not hub.config.web.enabled:
        return None
    console = WebConsole(hub)
    try:
        await console.start()
    except WebError as exc:
        log.error("web console not started: %s", exc)
        return None
    return console
