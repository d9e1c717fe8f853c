"""``sipscope loadgen``: synthetic but realistic carrier SIP traffic, deterministic with a seed.

Modules, from what is generated to where it goes:

* :mod:`~producers.loadgen.profile` - the :class:`Profile` (rate, daily curve, outcome mix, distributions,
  trunks with number plans, subscribers, attacks) and its text forms;
* :mod:`~producers.loadgen.traffic` / :mod:`~producers.loadgen.attacks` - the session streams (Poisson
  arrivals) and the sessions they start;
* :mod:`~producers.loadgen.calls` / :mod:`~producers.loadgen.registers` - complete SIP dialogs and
  REGISTER chains, rendered from a few per-session strings;
* :mod:`~producers.loadgen.engine` - :class:`Generator`: every message in capture-time order;
* :mod:`~producers.loadgen.frames` / :mod:`~producers.loadgen.outputs` - Ethernet/IPv4/UDP frames and
  pcap, HEP3 over UDP, raw SIP over UDP/TCP;
* :mod:`~producers.loadgen.cli` - the command (``register(sub)``).

In code::

    from producers.loadgen import Generator, Profile, PcapOutput, pump

    with open("x.pcap", "wb") as f:
        out = PcapOutput(f)
        pump(Generator(Profile(cps=50, duration=600, seed=7)).messages(), out)
        out.close()  # writes the frames still buffered
"""

from producers.loadgen.engine import Generator
from producers.loadgen.outputs import HepOutput, Pacer, PcapOutput, SipOutput, pump
from producers.loadgen.profile import Attack, Dist, Profile, ProfileError, Trunk

__all__ = ["Attack", "Dist", "Generator", "HepOutput", "Pacer", "PcapOutput", "Profile", "ProfileError", "SipOutput",
           "Trunk", "pump"]
