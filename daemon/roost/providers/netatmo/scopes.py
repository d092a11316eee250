"""The OAuth scopes a Netatmo account needs: what roost reads, and what its commands write.

Netatmo checks scopes per endpoint (a missing one is HTTP 403, code 13), so the scopes
`roost auth netatmo` asks for are derived from the endpoints the encoder writes to.
"""

from __future__ import annotations

READ = (
    "read_thermostat",
    "read_camera",
    "access_camera",
    "read_presence",
    "access_presence",
    "read_doorbell",
    "access_doorbell",
    "read_smokedetector",
    "read_carbonmonoxidedetector",
)
# endpoint a command writes to → the scope Netatmo wants for it
WRITE = {
    "setthermmode": "write_thermostat",
    "setroomthermpoint": "write_thermostat",
    "setstate": "write_thermostat",
    "setpersonsaway": "write_camera",
    "setpersonshome": "write_camera",
}
SCOPES = READ + tuple(sorted(set(WRITE.values())))
