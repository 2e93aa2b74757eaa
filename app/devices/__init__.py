"""Citizens' devices for offline minting: registered P-256 keys (``store``) and the desk that
certifies them (``desk``). The code format itself is ``app.codes.device``."""
from app.devices.desk import CertifiedDevice, DeviceDesk

__all__ = ["CertifiedDevice", "DeviceDesk"]
