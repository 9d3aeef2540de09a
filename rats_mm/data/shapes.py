"""Geometry of the synthetic objects: the part catalogue and one builder per category.

Every object is described in its own local frame (x to the right, y downwards, the object
spanning roughly [-1, 1] on both axes) as an ordered list of entries ``(part_name, contours)``.
Entries are drawn in list order, so later entries occlude earlier ones inside the object;
the contours of one entry are filled together with the even-odd rule (a ring is an outer
and an inner contour). Builders draw their per-instance shape variation from the ``rng``
they are given, so a category never renders twice the same way.

Pure numpy: nothing here rasterises.
"""
import numpy as np

# Part types: index + 1 is the global part id (0 = background, 255 = ignore). A type keeps
# its id, texture and colour family in every category it appears in.
PART_TYPES = [
    'head', 'beak', 'ear', 'torso', 'wing', 'tail', 'leg',          # animals
    'wheel', 'window', 'door', 'light', 'vehicle_body',             # vehicles (and houses)
    'frame', 'seat', 'handlebar',                                   # bicycle
    'wall', 'roof', 'chimney',                                      # house
]

# Category names: index + 1 is the category id (0 = background).
CATEGORIES = ['car', 'bus', 'bicycle', 'bird', 'dog', 'house']

CATEGORY_PARTS = {
    'car': ['vehicle_body', 'window', 'light', 'wheel'],
    'bus': ['vehicle_body', 'window', 'door', 'wheel'],
    'bicycle': ['wheel', 'frame', 'seat', 'handlebar'],
    'bird': ['head', 'beak', 'torso', 'wing', 'tail', 'leg'],
    'dog': ['head', 'ear', 'torso', 'leg', 'tail'],
    'house': ['wall', 'roof', 'window', 'door', 'chimney'],
}


def ellipse(cx, cy, rx, ry, angle=0.0, num_points=40):
    """Contour of an ellipse.

    Args:
        cx, cy: centre.
        rx, ry: semi-axes along the ellipse's own x and y axes.
        angle: rotation in radians (counter-clockwise in a y-up frame, clockwise on screen).
        num_points: number of vertices.

    Returns:
        (num_points, 2) float64 array of (x, y) vertices.
    """
    t = np.linspace(0.0, 2.0 * np.pi, num_points, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def rectangle(cx, cy, width, height, angle=0.0):
    """Contour of a (possibly rotated) rectangle.

    Args:
        cx, cy: centre.
        width, height: side lengths before rotation.
        angle: rotation in radians.

    Returns:
        (4, 2) float64 array of (x, y) vertices.
    """
    hw, hh = width / 2.0, height / 2.0
    corners = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return corners @ rot.T + np.array([cx, cy])


def segment(start, end, width):
    """Contour of a thick straight segment (a rectangle from ``start`` to ``end``).

    Args:
        start, end: (x, y) end points of the centre line.
        width: thickness across the centre line.

    Returns:
        (4, 2) float64 array of (x, y) vertices.
    """
    p0, p1 = np.asarray(start, float), np.asarray(end, float)
    direction = p1 - p0
    normal = np.array([-direction[1], direction[0]]) / max(np.linalg.norm(direction), 1e-9)
    offset = normal * width / 2.0
    return np.stack([p0 + offset, p1 + offset, p1 - offset, p0 - offset])


def polygon(points):
    """Contour from a list of (x, y) points.

    Args:
        points: sequence of (x, y) pairs.

    Returns:
        (n, 2) float64 array.
    """
    return np.asarray(points, dtype=np.float64)


def build_car(rng):
    """Side view of a car: body with cabin, windows, lights, two wheels.

    Args:
        rng: numpy Generator for the per-instance shape variation.

    Returns:
        List of (part_name, [contour, ...]) in drawing order.
    """
    body_h = rng.uniform(0.35, 0.5)
    cabin_top = rng.uniform(-0.55, -0.4)
    cabin_front = rng.uniform(0.3, 0.5)
    wheel_r = rng.uniform(0.2, 0.27)
    lower = rectangle(0.0, 0.15, 2.0, body_h)
    cabin = polygon([[-0.75, -0.09], [-0.5, cabin_top], [cabin_front, cabin_top],
                     [cabin_front + 0.3, -0.09]])
    mid = (cabin_front - 0.5) / 2.0
    inset = 0.07
    rear_window = polygon([[-0.62, -0.13], [-0.45, cabin_top + inset],
                           [mid - 0.04, cabin_top + inset], [mid - 0.04, -0.13]])
    front_window = polygon([[mid + 0.04, -0.13], [mid + 0.04, cabin_top + inset],
                            [cabin_front - 0.03, cabin_top + inset], [cabin_front + 0.18, -0.13]])
    light_r = rng.uniform(0.06, 0.1)
    wheels = [ellipse(x, 0.15 + body_h / 2.0, wheel_r, wheel_r) for x in (-0.6, 0.6)]
    return [('vehicle_body', [lower]), ('vehicle_body', [cabin]),
            ('window', [rear_window]), ('window', [front_window]),
            ('light', [ellipse(0.93, 0.05, light_r, light_r * 1.3)]),
            ('light', [rectangle(-0.95, 0.05, 0.08, light_r * 2.0)]),
            ('wheel', [wheels[0]]), ('wheel', [wheels[1]])]


def build_bus(rng):
    """Side view of a bus: box body, a row of windows, a door, two wheels.

    Args:
        rng: numpy Generator for the per-instance shape variation.

    Returns:
        List of (part_name, [contour, ...]) in drawing order.
    """
    height = rng.uniform(0.85, 1.1)
    top, bottom = -height / 2.0, height / 2.0
    num_windows = int(rng.integers(3, 6))
    wheel_r = rng.uniform(0.17, 0.23)
    entries = [('vehicle_body', [rectangle(0.0, 0.0, 2.0, height)])]
    span_left, span_right = -0.88, 0.5
    pitch = (span_right - span_left) / num_windows
    window_h = height * rng.uniform(0.25, 0.35)
    for i in range(num_windows):
        cx = span_left + (i + 0.5) * pitch
        window = rectangle(cx, top + 0.1 + window_h / 2.0, pitch * 0.8, window_h)
        entries.append(('window', [window]))
    door_top = top + 0.1
    entries.append(('door', [rectangle(0.74, (door_top + bottom - 0.05) / 2.0, 0.26,
                                       bottom - 0.05 - door_top)]))
    for x in (-0.6, 0.45):
        entries.append(('wheel', [ellipse(x, bottom, wheel_r, wheel_r)]))
    return entries


def build_bicycle(rng):
    """Side view of a bicycle: two ring wheels, tube frame, seat, handlebar.

    Args:
        rng: numpy Generator for the per-instance shape variation.

    Returns:
        List of (part_name, [contour, ...]) in drawing order.
    """
    wheel_r = rng.uniform(0.36, 0.44)
    tube = rng.uniform(0.06, 0.09)
    rear, front = np.array([-0.58, 0.35]), np.array([0.58, 0.35])
    crank = np.array([0.0, 0.38])
    seat_joint = np.array([-0.18, rng.uniform(-0.35, -0.25)])
    head_joint = np.array([0.42, rng.uniform(-0.35, -0.25)])
    entries = []
    for hub in (rear, front):
        ring = [ellipse(hub[0], hub[1], wheel_r, wheel_r),
                ellipse(hub[0], hub[1], wheel_r * 0.78, wheel_r * 0.78)]
        entries.append(('wheel', ring))
        entries.append(('wheel', [ellipse(hub[0], hub[1], wheel_r * 0.2, wheel_r * 0.2)]))
    for start, end in ((rear, seat_joint), (seat_joint, crank), (crank, head_joint),
                       (head_joint, front), (seat_joint, head_joint), (rear, crank)):
        entries.append(('frame', [segment(start, end, tube)]))
    seat_post_top = seat_joint + np.array([-0.03, -0.12])
    entries.append(('frame', [segment(seat_joint, seat_post_top, tube)]))
    entries.append(('seat', [ellipse(seat_post_top[0], seat_post_top[1] - 0.03,
                                     rng.uniform(0.13, 0.18), 0.06)]))
    bar_top = head_joint + np.array([-0.02, -0.2])
    entries.append(('handlebar', [segment(head_joint, bar_top, tube)]))
    entries.append(('handlebar', [segment(bar_top + [-0.12, 0.02], bar_top + [0.14, -0.02],
                                          tube * 1.1)]))
    return entries


def build_bird(rng):
    """Side view of a bird facing right: tail, legs, torso, wing, head, beak.

    Args:
        rng: numpy Generator for the per-instance shape variation.

    Returns:
        List of (part_name, [contour, ...]) in drawing order.
    """
    torso_rx, torso_ry = rng.uniform(0.45, 0.6), rng.uniform(0.26, 0.36)
    head_r = rng.uniform(0.18, 0.25)
    head = np.array([torso_rx * 0.9, -torso_ry - head_r * 0.3])
    tail_len = rng.uniform(0.35, 0.55)
    tail_spread = rng.uniform(0.12, 0.25)
    tail_root = -torso_rx * 0.85
    wing_lift = rng.uniform(-0.6, 0.1)
    leg_top = torso_ry * 0.8
    beak_len = rng.uniform(0.18, 0.3)
    entries = [('tail', [polygon([[tail_root, -0.08], [tail_root - tail_len, -tail_spread - 0.1],
                                  [tail_root - tail_len, tail_spread - 0.1], [tail_root, 0.08]])])]
    for x in (-0.1, 0.12):
        entries.append(('leg', [segment((x, leg_top), (x + 0.05, 0.85), 0.06)]))
    entries.append(('torso', [ellipse(0.0, 0.0, torso_rx, torso_ry, angle=-0.1)]))
    entries.append(('wing', [ellipse(-0.08, -0.05, torso_rx * 0.75, torso_ry * 0.5,
                                     angle=wing_lift)]))
    entries.append(('head', [ellipse(head[0], head[1], head_r, head_r)]))
    tip = head + np.array([head_r + beak_len, head_r * 0.2])
    entries.append(('beak', [polygon([head + [head_r * 0.8, -head_r * 0.35], tip,
                                      head + [head_r * 0.8, head_r * 0.4]])]))
    return entries


def build_dog(rng):
    """Side view of a dog facing right: tail, four legs, torso, head with snout, ear.

    Args:
        rng: numpy Generator for the per-instance shape variation.

    Returns:
        List of (part_name, [contour, ...]) in drawing order.
    """
    torso_rx, torso_ry = rng.uniform(0.5, 0.65), rng.uniform(0.2, 0.3)
    leg_w = rng.uniform(0.1, 0.14)
    leg_bottom = rng.uniform(0.7, 0.85)
    tail_angle = rng.uniform(-1.3, -0.3)
    tail_root = np.array([-torso_rx * 0.9, -torso_ry * 0.4])
    tail_tip = tail_root + 0.45 * np.array([-np.cos(tail_angle), np.sin(tail_angle)])
    head = np.array([torso_rx + 0.08, -torso_ry - 0.18])
    head_r = rng.uniform(0.18, 0.24)
    entries = [('tail', [segment(tail_root, tail_tip, rng.uniform(0.07, 0.11))])]
    for x in (-torso_rx * 0.75, -torso_rx * 0.5, torso_rx * 0.5, torso_rx * 0.75):
        stride = rng.uniform(-0.1, 0.1)
        entries.append(('leg', [segment((x, 0.0), (x + stride, leg_bottom), leg_w)]))
    entries.append(('torso', [ellipse(0.0, 0.0, torso_rx, torso_ry)]))
    entries.append(('head', [ellipse(head[0], head[1], head_r, head_r * 0.9)]))
    entries.append(('head', [ellipse(head[0] + head_r * 1.1, head[1] + head_r * 0.3,
                                     head_r * 0.65, head_r * 0.42, angle=0.15)]))
    ear_angle = rng.uniform(-0.4, 0.5)
    entries.append(('ear', [ellipse(head[0] - head_r * 0.35, head[1] - head_r * 0.1,
                                    head_r * 0.3, head_r * 0.75, angle=ear_angle)]))
    return entries


def build_house(rng):
    """Front view of a house: chimney, wall, roof, windows, door.

    Args:
        rng: numpy Generator for the per-instance shape variation.

    Returns:
        List of (part_name, [contour, ...]) in drawing order.
    """
    wall_w = rng.uniform(1.3, 1.6)
    roof_peak = rng.uniform(-1.0, -0.75)
    chimney_x = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.45)
    entries = [('chimney', [rectangle(chimney_x, -0.7, 0.18, 0.45)]),
               ('wall', [rectangle(0.0, 0.25, wall_w, 1.1)]),
               ('roof', [polygon([[-wall_w / 2 - 0.12, -0.3], [wall_w / 2 + 0.12, -0.3],
                                  [0.0, roof_peak]])])]
    door_x = float(rng.choice([-0.4, 0.0, 0.4]))
    slots = [(x, y) for y in (-0.02, 0.42) for x in (-0.45, 0.0, 0.45)
             if not (y > 0.2 and abs(x - door_x) < 0.3)]
    picked = rng.choice(len(slots), size=int(rng.integers(1, 5)), replace=False)
    side = rng.uniform(0.22, 0.3)
    for i in sorted(picked):
        entries.append(('window', [rectangle(slots[i][0], slots[i][1], side, side)]))
    entries.append(('door', [rectangle(door_x, 0.5, 0.3, 0.6)]))
    return entries


CATEGORY_BUILDERS = {
    'car': build_car, 'bus': build_bus, 'bicycle': build_bicycle,
    'bird': build_bird, 'dog': build_dog, 'house': build_house,
}


def build_object(category, rng):
    """Local-frame geometry of one object, with a random aspect-ratio stretch.

    Args:
        category: a name from ``CATEGORIES``.
        rng: numpy Generator for the per-instance shape variation.

    Returns:
        List of (part_name, [contour, ...]) in drawing order; contours are (n, 2) arrays in
        the object's local frame.
    """
    entries = CATEGORY_BUILDERS[category](rng)
    stretch = np.array([rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15)])
    return [(name, [c * stretch for c in contours]) for name, contours in entries]
