"""Production recorder: LiveKit Egress, room composite, audio only.

Started by the recording gate only after a granted consent receipt; stopped on
revocation and at the end of the call. Where the file goes (S3, GCS...) is configured on
the egress side; we only name the path.
"""

from __future__ import annotations

import logging

from livekit import api

log = logging.getLogger(__name__)


class EgressRecorder:
    """Records one room's mixed audio with LiveKit Egress."""

    def __init__(self, lkapi: api.LiveKitAPI, room: str, filepath: str) -> None:
        self._api = lkapi
        self._room = room
        self._filepath = filepath

    async def start(self, call_id: str) -> str | None:
        info = await self._api.egress.start_room_composite_egress(
            api.RoomCompositeEgressRequest(
                room_name=self._room,
                audio_only=True,
                file_outputs=[
                    api.EncodedFileOutput(
                        file_type=api.EncodedFileType.OGG, filepath=self._filepath
                    )
                ],
            )
        )
        log.info(
            "Egress recording started.", extra={"call_id": call_id, "egress_id": info.egress_id}
        )
        egress_id: str = info.egress_id
        return egress_id

    async def stop(self, recording_id: str | None) -> None:
        if recording_id:
            await self._api.egress.stop_egress(api.StopEgressRequest(egress_id=recording_id))
            log.info("Egress recording stopped.", extra={"egress_id": recording_id})
