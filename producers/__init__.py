"""Edge capture agents: pcap/pcapng files, live interfaces (tshark), TLS with a key log, HEP collector.

They parse SIP (pure parser, no I/O) and publish :class:`sipscope.records.SipMessage` to ``sip.messages``.
"""
