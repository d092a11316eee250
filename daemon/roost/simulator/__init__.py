"""Local fakes of the vendor clouds, speaking the real wire protocols on loopback.

`home` is a vendor-neutral simulated home with a little physics and scenario controls;
`http` is a small HTTP/1.1 server; each vendor front (such as `nest_wwn`) serves one
`SimHome` with that vendor's URLs, document shape, streaming and errors.
"""
