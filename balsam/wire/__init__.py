"""What the dbserver and its clients share about the wire: the request
protocol, the posted server address (``dbwriter_address``) and the CURVE
credentials. A leaf package: it imports neither ``dbclient`` nor ``dbserver``
(nor Django), so both sides can depend on it without depending on each other.
"""
