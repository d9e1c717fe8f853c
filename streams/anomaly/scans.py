"""Attacks on accounts: password guessing on REGISTER, and probing which extensions exist.

The two are kept apart on purpose ("split auth vs scan"): guessing hammers few users with credentials,
enumeration touches many users and mostly gets "no such user" back. A tool that does both raises both.

``registration_bruteforce`` (subject: the IP the failures are sent to, i.e. the requester)
    Counts, per IP and in a sliding ``bruteforce_window_s``, failed REGISTER authentications: a 403, or a
    401/407 answering a REGISTER that carried credentials (Authorization with a username: the password was
    wrong), and 2xx answers to REGISTER. A plain challenge to a REGISTER without credentials is the normal
    first step of every registration and is not counted (unless ``bruteforce_count_challenges``).
    Retransmissions are not counted. Raised when failures >= ``bruteforce_failures`` and 2xx <=
    ``bruteforce_max_success_ratio`` x failures; ``critical`` at ``critical_factor`` x the threshold.

``extension_enumeration`` (subject: source IP)
    Per source IP and sliding ``enum_window_s``: the distinct users (To user, else Request-URI user) of its
    out-of-dialog requests of ``enum_methods`` (REGISTER, INVITE, OPTIONS... scans), and the final
    responses sent back to it, split into "denying" (``enum_negative_codes``: 401, 403, 404, 407, 483,
    484, 485, 604) and others. Raised when distinct users >= ``enum_distinct_users`` and denying responses
    are at least ``enum_negative_ratio`` of the final responses (at least one). A PBX that is challenged
    (407) on each call and then connects stays near 50 % and is not flagged.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from sipscope.records import SipMessage
from streams.anomaly.base import Detector, Keyed, bucket_width, dump_table, load_table
from streams.anomaly.calltrack import NEW
from streams.anomaly.windows import (
    BUCKETS,
    Distinct,
    Recent,
    Window,
    add_evidence,
    touch,
)

if TYPE_CHECKING:
    from streams.anomaly.engine import AnomalyEngine

_USERS_SHOWN = 5


class RegistrationBruteforce(Detector):
    name = "registration_bruteforce"

    def __init__(self, eng: AnomalyEngine) -> None:
        super().__init__(eng)
        s = eng.s
        self.width = bucket_width(s.bruteforce_window_s)
        self.keys: OrderedDict[str, Keyed] = OrderedDict()
        self.creds = Recent(32.0, s.max_tracked_messages)
        """REGISTER transactions that carried credentials: key -> (ts, username)."""

    def on_message(self, m: SipMessage, flag: int, eng: AnomalyEngine) -> None:
        if m.cseq_method != "REGISTER" or flag != NEW:
            return
        if m.is_request:
            if m.auth_user is not None:
                self.creds.put(f"{m.call_id}\x1f{m.cseq_num}\x1f{m.via_branch}", m.ts, m.auth_user)
            return
        st = m.status_code or 0
        if st < 200:
            return
        user = None
        if st < 300:
            fail = False
        elif st == 403:
            fail, user = True, m.to_user
        elif st in (401, 407):
            cred = self.creds.seen.get(f"{m.call_id}\x1f{m.cseq_num}\x1f{m.via_branch}")
            if cred is None and not self.s.bruteforce_count_challenges:
                return
            fail, user = True, (cred[2] if cred else m.to_user)
        else:
            return
        s = self.s
        ip = m.dst_ip
        k = touch(self.keys, ip, lambda: Keyed(2), s.max_keys)
        b = int(m.ts // self.width)
        k.win.add(b, 0 if fail else 1)
        fails, oks = k.win.expire(b, BUCKETS)
        if not fail:
            return
        add_evidence(k.ev, m.call_id, s.evidence_max)
        users = k.extra or []
        if user and user not in users:
            users = (users + [user])[-_USERS_SHOWN:]
            k.extra = users
        thr = s.bruteforce_failures
        if fails >= thr and oks <= s.bruteforce_max_success_ratio * fails:
            sev = "critical" if fails >= s.critical_factor * thr else "warning"
            eng.hit(self.name, "ip", ip, m.ts, s.bruteforce_window_s, fails, thr, None,
                    f"{fails:.0f} failed REGISTER authentications to {ip} in {s.bruteforce_window_s:.0f} s "
                    f"({oks:.0f} accepted), from {m.src_ip}; users {', '.join(users)}", k.ev, sev)

    def on_minute(self, minute: int, eng: AnomalyEngine) -> None:
        self.creds.expire(minute * 60.0 + 60.0)

    def to_state(self) -> Any:
        return {"keys": dump_table(self.keys), "creds": self.creds.to_state()}

    def load(self, state: Any) -> None:
        self.keys = load_table(state["keys"])
        self.creds.load(state["creds"])


class _Enum:
    __slots__ = ("ev", "users", "win")

    def __init__(self) -> None:
        self.users = Distinct()
        self.win = Window(2)  # [denying finals, other finals]
        self.ev: list[str] = []

    def to_state(self) -> list:
        return [self.users.to_state(), self.win.to_state(), self.ev]

    @classmethod
    def from_state(cls, s: list) -> _Enum:
        o = cls.__new__(cls)
        o.users, o.win, o.ev = Distinct.from_state(s[0]), Window.from_state(s[1]), list(s[2])
        return o


class ExtensionEnumeration(Detector):
    name = "extension_enumeration"

    def __init__(self, eng: AnomalyEngine) -> None:
        super().__init__(eng)
        s = eng.s
        self.width = bucket_width(s.enum_window_s)
        self.methods = frozenset(s.enum_methods)
        self.negative = frozenset(s.enum_negative_codes)
        self.cap = max(4 * s.enum_distinct_users, 64)
        self.keys: OrderedDict[str, _Enum] = OrderedDict()

    def on_message(self, m: SipMessage, flag: int, eng: AnomalyEngine) -> None:
        if flag != NEW:
            return
        b = int(m.ts // self.width)
        if m.is_request:
            if m.to_tag or m.method not in self.methods:
                return
            user = m.to_user or m.ruri_user
            if not user:
                return
            ip = m.src_ip
            k = touch(self.keys, ip, _Enum, self.s.max_keys)
            k.users.add(b, user, self.cap)
            add_evidence(k.ev, m.call_id, self.s.evidence_max)
        else:
            st = m.status_code or 0
            if st < 200 or m.cseq_method not in self.methods:
                return
            ip = m.dst_ip
            k = self.keys.get(ip)
            if k is None:
                return
            k.win.add(b, 0 if st in self.negative else 1)
        self._judge(ip, k, b, m, eng)

    def _judge(self, ip: str, k: _Enum, b: int, m: SipMessage, eng: AnomalyEngine) -> None:
        s = self.s
        users = k.users.expire(b, BUCKETS)
        neg, pos = k.win.expire(b, BUCKETS)
        thr = s.enum_distinct_users
        if users >= thr and neg > 0 and neg >= s.enum_negative_ratio * (neg + pos):
            sev = "critical" if users >= s.critical_factor * thr else "warning"
            shown = ", ".join(list(k.users.seen)[-_USERS_SHOWN:])
            eng.hit(self.name, "ip", ip, m.ts, s.enum_window_s, users, thr, None,
                    f"{ip} probed {users} distinct users in {s.enum_window_s:.0f} s; {neg:.0f} of {neg + pos:.0f} "
                    f"final responses denied them (401/403/404/407/48x/604); e.g. {shown}", k.ev, sev)

    def to_state(self) -> Any:
        return [[k, v.to_state()] for k, v in self.keys.items()]

    def load(self, state: Any) -> None:
        self.keys = OrderedDict((k, _Enum.from_state(v)) for k, v in state)
