"""A console client for the scripts and benchmarks: a browser with its own source address and
cookies that follows no redirects, signing in with password and a real two-factor code."""
import base64
import hashlib
import hmac
import http.client
import re
import struct
import time
import urllib.parse

PASSWORD = "a long bench password 42"


def totp(secret_b32, at=None):
    key = base64.b32decode(secret_b32.replace(" ", "").upper() + "=" * (-len(secret_b32.replace(" ", "")) % 8))
    step = int((at or time.time()) // 30)
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1_000_000)


class Browser:
    """One person's browser: its own source address, cookies, no redirects followed."""

    def __init__(self, port, source):
        self.port, self.source, self.cookies = port, source, {}
        self.last_step = 0

    def code(self):
        """A two-factor code the server will take: a step later than the last one used (the
        server refuses a code twice), at most one step ahead of the clock (the drift it
        allows); waits for the clock when both steps in reach were used."""
        while True:
            now = int(time.time() // 30)
            step = max(now, self.last_step + 1)
            if step <= now + 1:
                self.last_step = step
                return totp(self.secret, at=step * 30)
            time.sleep(30 - time.time() % 30 + 0.05)

    def request(self, method, path, form=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30,
                                       source_address=(self.source, 0))
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["content-type"] = "application/x-www-form-urlencoded"
        t0 = time.perf_counter()
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read().decode(errors="replace")
        took = (time.perf_counter() - t0) * 1000
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                self.cookies[name] = rest.split(";")[0]
        c.close()
        return r.status, r.getheader("location"), data, took

    def sign_in(self, user):
        """Password, then the two-factor step (set-up on first sign-in, else a code)."""
        _, _, page, _ = self.request("GET", "/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        form = {"csrf": csrf, "username": user, "password": PASSWORD}
        status, loc, _, _ = self.request("POST", "/sign-in", form)
        assert status == 303, (user, status)
        while loc and loc != "/":
            status, loc2, page, _ = self.request("GET", loc)
            if loc.startswith("/sign-in/setup") or loc.startswith("/sign-in/code"):
                csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
                if loc.startswith("/sign-in/setup"):
                    self.secret = re.search(r'id="totp-secret">([^<]+)<', page).group(1)
                status, loc2, _, _ = self.request("POST", loc, {"csrf": csrf, "code": self.code()})
            loc = loc2
        status, _, page, _ = self.request("GET", "/")
        assert status == 200 and "signed in as" in page, (user, status)
