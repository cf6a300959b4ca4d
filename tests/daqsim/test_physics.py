"""The simulated physics against the detector figures and the recorded truth."""

from __future__ import annotations

import numpy as np
from simhelpers import read_events, truth

from daqsim import SimulationResult, model
from dqm import detector
from dqm.config import Settings


def flat(events: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    event = np.repeat(np.arange(len(events["nhits"])), events["nhits"])
    return (
        event,
        np.concatenate(events["hits_pmt_id"]),
        np.concatenate(events["hits_adc"]),
        np.concatenate(events["hits_tdc"]),
    )


def test_light_yield_at_the_centre(centre_run: SimulationResult, sim_settings: Settings) -> None:
    """Mean PE of a 1 MeV event at the centre equals the light yield within 2%."""
    events = read_events(centre_run.files[0].path)
    true = truth(sim_settings, 501, 0)
    event, pmt, adc, _ = flat(events)
    pe_per_event = np.bincount(event, adc / true["gain"][pmt], minlength=len(events["nhits"]))
    dark_pe = (true["dark_rate_hz"] * detector.READOUT_WINDOW_NS * 1e-9).sum()
    signal_pe = pe_per_event.mean() - dark_pe
    assert abs(signal_pe / detector.LIGHT_YIELD_PE_PER_MEV - 1) < 0.02
    # Photostatistics: the spread of the total charge is about sqrt(N_PE) (plus charge resolution).
    relative_spread = pe_per_event.std() / signal_pe
    assert 1.0 < relative_spread * np.sqrt(signal_pe) < 1.25


def test_nhits_and_total_pe_means(centre_run: SimulationResult, sim_settings: Settings) -> None:
    true = truth(sim_settings, 501, 0)
    events = read_events(centre_run.files[0].path)
    mu = detector.LIGHT_YIELD_PE_PER_MEV * true["pde_rel"] / detector.N_PMTS  # at the centre
    dark_mu = true["dark_rate_hz"] * detector.READOUT_WINDOW_NS * 1e-9
    expected_nhits = (1 - np.exp(-mu)).sum() + dark_mu.sum()
    assert abs(events["nhits"].mean() / expected_nhits - 1) < 0.01
    # The design figure: a 2 MeV event makes about 4,000 hits, dark noise included.
    expected_2mev = (1 - np.exp(-2 * mu)).sum() + dark_mu.sum()
    assert 3_700 < expected_2mev < 4_200


def test_hit_time_minus_flight_time_peaks_at_the_cable_offset(
    laser_run: SimulationResult, sim_settings: Settings
) -> None:
    true = truth(sim_settings, 502, 0)
    events = read_events(laser_run.files[0].path)
    event, pmt, _adc, tdc = flat(events)
    flight = detector.PMT_RADIUS_MM / detector.LS_GROUP_VELOCITY_MM_PER_NS  # laser at the centre
    residual = tdc - true["t0_ns"][event] - flight
    near = np.abs(residual - true["offset_ns"][pmt]) < 40  # drop dark hits, spread over 1 us
    assert near.mean() > 0.85
    # Hamamatsu PMTs (TTS 1.2 ns): the residual minus the true offset peaks at zero.
    pmts = detector.load_pmts()
    hamamatsu = (pmts["type"] == "Hamamatsu").to_numpy()[pmt] & near
    counts, edges = np.histogram(
        residual[hamamatsu] - true["offset_ns"][pmt[hamamatsu]], bins=np.arange(-10, 10.01, 0.25)
    )
    peak = 0.5 * (edges[counts.argmax()] + edges[counts.argmax() + 1])
    assert abs(peak) < 0.5
    # Per PMT, the median residual recovers the cable offset (offsets span -10..10 ns).
    sample = np.unique(pmt[hamamatsu])[:300]
    medians = np.array([np.median(residual[hamamatsu & (pmt == i)]) for i in sample])
    assert np.abs(medians - true["offset_ns"][sample]).max() < 1.5
    assert np.corrcoef(medians, true["offset_ns"][sample])[0, 1] > 0.98


def test_laser_intensity_and_types(laser_run: SimulationResult, sim_settings: Settings) -> None:
    events = read_events(laser_run.files[0].path)
    true = truth(sim_settings, 502, 0)
    _event, pmt, _adc, _tdc = flat(events)
    occupancy = np.bincount(pmt, minlength=detector.N_PMTS) / len(events["nhits"])
    mean_pe = 0.5 * true["pde_rel"]
    expected = 1 - np.exp(-mean_pe) + true["dark_rate_hz"] * 1e-6
    assert abs(occupancy.mean() / expected.mean() - 1) < 0.01
    assert set(events["trigger_type"]) == {2}


def test_scintillation_time_profile(centre_run: SimulationResult, sim_settings: Settings) -> None:
    """Physics hits at the centre: first-hit times pile up just after t0 + time of flight + offset."""
    true = truth(sim_settings, 501, 0)
    events = read_events(centre_run.files[0].path)
    event, pmt, _adc, tdc = flat(events)
    residual = (
        tdc
        - true["t0_ns"][event]
        - detector.PMT_RADIUS_MM / detector.LS_GROUP_VELOCITY_MM_PER_NS
        - true["offset_ns"][pmt]
    )
    signal = (residual > -30) & (residual < 200)
    median = np.median(residual[signal])
    assert 1.0 < median < 12.0  # earliest of ~0.1 PE per PMT: emission (4.6 ns fast) + TTS


def test_dead_hot_and_noisy_pmts(faulty_run: SimulationResult, sim_settings: Settings) -> None:
    manifest = __import__("json").loads(faulty_run.manifest.read_text())
    dead, hot, noisy = (np.array(manifest["pmts"][k]) for k in ("dead", "hot", "noisy"))
    assert len(dead) == 25 and len(hot) == 4 and len(noisy) == 6
    assert not set(dead) & set(hot) and not set(hot) & set(noisy)
    events = read_events(faulty_run.files[0].path)
    event, pmt, _adc, _tdc = flat(events)
    n_events = len(events["nhits"])
    assert not np.isin(pmt, dead).any()
    fired = np.zeros((n_events, detector.N_PMTS), dtype=bool)
    fired[event, pmt] = True
    occupancy = fired.mean(axis=0)
    assert np.all(occupancy[hot] > 0.87) and np.all(occupancy[hot] < 0.97)
    normal = np.setdiff1d(np.arange(detector.N_PMTS), np.concatenate([dead, hot, noisy]))
    assert occupancy[normal].mean() < 0.2
    # 2 MHz in a 1 us window: about 2 dark hits an event.
    hits_per_event = np.bincount(pmt, minlength=detector.N_PMTS)[noisy] / n_events
    assert np.all(np.abs(hits_per_event - 2.0) < 0.4)


def test_gain_drift_time_shift_light_yield_and_rate(
    faulty_run: SimulationResult, sim_settings: Settings
) -> None:
    manifest = __import__("json").loads(faulty_run.manifest.read_text())
    group = np.array(manifest["pmts"]["gain_drift"])
    nominal = model.nominal_detector()
    gains = [truth(sim_settings, 503, seq)["gain"] for seq in range(5)]
    # The gains of the group drift linearly to -10% at the last file; the others stay.
    for seq, gain in enumerate(gains):
        np.testing.assert_allclose(gain[group] / nominal.gain[group], 1 - 0.1 * (seq + 1) / 5)
    others = np.setdiff1d(np.arange(detector.N_PMTS), group)
    np.testing.assert_array_equal(gains[4][others], nominal.gain[others])

    # ... and the charges follow: median ADC (mostly single PE) of the group's hits over the
    # others', file 2 against file 0.
    def group_charge_ratio(seq: int) -> float:
        _e, pmt, adc, _t = flat(read_events(faulty_run.files[seq].path))
        in_group = np.isin(pmt, group)
        return float(np.median(adc[in_group]) / np.median(adc[~in_group]))

    drift = group_charge_ratio(2) / group_charge_ratio(0)
    assert abs(drift - (1 - 0.06) / (1 - 0.02)) < 0.02

    shifted = np.array(manifest["pmts"]["time_shift"])
    offsets = [truth(sim_settings, 503, seq)["offset_ns"] for seq in range(3)]
    np.testing.assert_allclose(offsets[0][shifted], nominal.offset_ns[shifted])
    np.testing.assert_allclose(offsets[1][shifted], nominal.offset_ns[shifted] + 8)

    light_yield = [float(truth(sim_settings, 503, seq)["light_yield"]) for seq in range(3)]
    assert light_yield[0] == light_yield[1] == detector.LIGHT_YIELD_PE_PER_MEV
    assert light_yield[2] == detector.LIGHT_YIELD_PE_PER_MEV * 0.8

    def rate_hz(seq: int) -> float:
        times = read_events(faulty_run.files[seq].path)["trigger_time"]
        return (len(times) - 1) / ((times[-1] - times[0]) * 1e-9)

    assert 700 < rate_hz(1) < 1300 and 3500 < rate_hz(2) < 6500


def test_physics_spectrum_range() -> None:
    rng = np.random.default_rng(5)
    energy = model.physics_energies(rng, 200_000)
    assert energy.min() >= model.PHYSICS_THRESHOLD_MEV - 1e-12
    assert 0.001 < (energy > 10).mean() < 0.01  # rare high-energy events
    low = energy[energy < 5]
    counts, edges = np.histogram(low, bins=np.arange(0.2, 5.01, 0.05))
    centre = lambda e: counts[np.searchsorted(edges, e) - 1]
    assert centre(1.46) > 2 * centre(1.8)  # the K40 line stands out
    assert centre(2.6) > 5 * centre(3.0)  # so does Tl208
    vertices = model.uniform_vertices(rng, 100_000)
    radius = np.linalg.norm(vertices, axis=1)
    assert radius.max() <= detector.LS_RADIUS_MM
    assert abs(np.mean(radius**3) / detector.LS_RADIUS_MM**3 - 0.5) < 0.01  # uniform in volume
