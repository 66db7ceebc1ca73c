"""Audio through FluidSynth (Debian ``fluidsynth`` + ``fluid-soundfont-gm``, installed by ``make``).

FluidSynth honours the sustain (CC64), sostenuto and soft pedals, so the pedal is heard as played;
the General MIDI program 0 of FluidR3_GM is a sampled acoustic grand.  FluidSynth runs as a
subprocess on a temporary MIDI file, with a time limit, and the WAV is written atomically.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

from espressivo.core import Performance
from espressivo.errors import EspressivoError
from espressivo.io.files import check_output, make_parent
from espressivo.io.midi import midi_bytes

SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
)
MAX_AUDIO_SEC = 3600  # an hour of audio: 0.6 GB of 44.1-kHz stereo WAV
INSTALL_HINT = "run `make setup` or `apt-get install fluidsynth fluid-soundfont-gm`"


def find_soundfont(soundfont: str | os.PathLike | None = None) -> Path:
    """The soundfont to use: the argument, else ``$ESPRESSIVO_SOUNDFONT``, else a system General MIDI one."""
    choice = soundfont or os.environ.get("ESPRESSIVO_SOUNDFONT")
    if choice:
        path = Path(choice)
        if not path.is_file():
            raise EspressivoError(f"{path}: soundfont not found")
        return path
    for candidate in SOUNDFONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise EspressivoError(f"no piano soundfont found; {INSTALL_HINT}")


def synthesize(
    performance: Performance,
    wav_path: str | os.PathLike,
    *,
    soundfont: str | os.PathLike | None = None,
    sample_rate: int = 44100,
    gain: float = 1.0,
    fold_pedal: bool = False,
    cancel=None,
) -> Path:
    """Render ``performance`` to a 16-bit stereo WAV file and return its path.

    ``fold_pedal`` first folds the sustain pedal into note durations (only needed for synths that
    ignore CC64; FluidSynth does not).  ``cancel`` (a ``threading.Event``): when it is set, fluidsynth is stopped
    within a fifth of a second and :class:`InterruptedError` raised (no file is left).
    """
    executable = shutil.which("fluidsynth")
    if executable is None:
        raise EspressivoError(f"fluidsynth is not installed; {INSTALL_HINT}")
    if not 8000 <= int(sample_rate) <= 192000:
        raise EspressivoError(f"sample rate must lie in 8000..192000 Hz, got {sample_rate}")
    if not 0 < gain <= 5:
        raise EspressivoError(f"gain must lie in (0, 5], got {gain}")
    if len(performance) == 0:
        raise EspressivoError("nothing to synthesize: the performance has no notes")
    if performance.end_sec > MAX_AUDIO_SEC:
        raise EspressivoError(
            f"the performance lasts {performance.end_sec:,.0f} s; audio is written for at most {MAX_AUDIO_SEC} s "
            f"(about {MAX_AUDIO_SEC * sample_rate * 4 / 2**30:.1f} GB of WAV)"
        )
    font = find_soundfont(soundfont)
    if fold_pedal:
        performance = performance.apply_sustain()
    wav_path = Path(wav_path)

    check_output(wav_path)
    make_parent(wav_path)
    _remove_stale(wav_path)
    with tempfile.TemporaryDirectory(prefix="espressivo-synth-") as tmp:
        midi = Path(tmp) / "in.mid"
        midi.write_bytes(midi_bytes(performance))
        out = wav_path.parent / f".{wav_path.name}.{os.getpid()}.tmp.wav"
        command = [
            executable,
            "-ni",
            "-q",
            "-T",
            "wav",
            "-O",
            "s16",
            "-r",
            str(int(sample_rate)),
            "-g",
            str(gain),
            "-F",
            str(out),
            str(font),
            str(midi),
        ]
        try:
            # fluidsynth dies with this process (a killed `synth` leaves no writer behind), and its partial
            # output is removed whatever stops it (an error, Ctrl-C, SIGTERM)
            returncode, detail = _run(command, 120 + 2 * performance.end_sec, cancel)
            if returncode != 0 or not out.is_file():
                raise EspressivoError(f"fluidsynth failed: {detail or 'exit code ' + str(returncode)}")
            os.replace(out, wav_path)
        finally:
            out.unlink(missing_ok=True)
    return wav_path


def _run(command: list[str], timeout: float, cancel) -> tuple[int, str]:
    """Run fluidsynth (it dies with this process); stopped on ``cancel`` or after ``timeout`` seconds."""
    import time

    # util-linux's setpriv (Debian's base system) makes the kernel kill fluidsynth when this thread dies: a
    # killed `synth` leaves no writer behind (a preexec_fn would do the same but is unsafe beside threads)
    setpriv = shutil.which("setpriv")
    if setpriv is not None and sys.platform.startswith("linux"):
        command = [setpriv, "--pdeathsig", "KILL", "--", *command]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    process.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if cancel is not None and cancel.is_set():
                        raise InterruptedError("synthesis cancelled") from None
                    if time.monotonic() > deadline:
                        raise EspressivoError("fluidsynth took too long and was stopped") from None
        finally:
            if process.poll() is None:  # an error, a cancel, Ctrl-C or SIGTERM: no writer is left behind
                process.kill()
                process.wait()
        log.seek(0)
        lines = log.read().decode("utf-8", "replace").strip().splitlines()
    return process.returncode, lines[-1] if lines else ""


def _remove_stale(wav_path: Path) -> None:
    """Partial outputs of earlier runs for this file whose process is gone (killed with SIGKILL)."""
    for tmp in wav_path.parent.glob(f".{wav_path.name}.*.tmp.wav"):
        pid = tmp.name[len(wav_path.name) + 2 : -len(".tmp.wav")]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            tmp.unlink(missing_ok=True)


def wav_stats(path: str | os.PathLike) -> dict[str, float]:
    """Duration (s), RMS and peak (dBFS) of a 16-bit WAV file — to check a render is not silence."""
    try:
        with wave.open(str(path), "rb") as handle:
            if handle.getsampwidth() != 2:
                raise EspressivoError(f"{path}: only 16-bit WAV files are supported")
            frames = handle.readframes(handle.getnframes())
            rate, channels = handle.getframerate(), handle.getnchannels()
    except (wave.Error, EOFError, OSError) as err:
        raise EspressivoError(f"{path}: not a readable WAV file ({err})") from None
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768.0
    rms = float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    return {
        "duration_sec": samples.size / max(channels, 1) / rate,
        "sample_rate": float(rate),
        "rms_dbfs": 20 * np.log10(max(rms, 1e-12)),
        "peak_dbfs": 20 * np.log10(max(peak, 1e-12)),
    }
