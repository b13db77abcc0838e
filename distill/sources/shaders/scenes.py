"""Raymarched 3-D scenes (signed-distance fields, lit) and 2-D shape compositions: spheres,
torus/box morphs, repeated lattices, displaced blobs, metaballs, Lissajous curves, rectangles."""

# Camera, raymarcher and lighting shared by the raymarched scenes; each defines map(vec3).
_RAYMARCH = """
vec3 shade(vec2 p) {
    vec3 ro = vec3(0.0, 0.0, mix(2.6, 4.0, A.z));
    vec3 rd = normalize(vec3(p, -1.8));
    mat2 yaw = rot(A.x * TAU), pitch = rot(mix(-0.7, 0.7, A.y));
    ro.yz = pitch * ro.yz; rd.yz = pitch * rd.yz;
    ro.xz = yaw * ro.xz; rd.xz = yaw * rd.xz;
    float t = 0.0, hit = 0.0;
    for (int i = 0; i < 40; i++) {
        float d = map(ro + rd * t);
        if (d < 0.003) { hit = 1.0; break; }
        t += d * STEP;
        if (t > 12.0) break;
    }
    vec3 bg = pal2(0.5 + 0.5 * rd.y);
    if (hit < 0.5) return bg;
    vec3 q = ro + rd * t;
    const vec2 e = vec2(0.002, -0.002);
    vec3 n = normalize(e.xyy * map(q + e.xyy) + e.yyx * map(q + e.yyx)
                     + e.yxy * map(q + e.yxy) + e.xxx * map(q + e.xxx));
    vec3 l = normalize(vec3(B.x - 0.5, 0.8, B.y - 0.2));
    float dif = max(dot(n, l), 0.0), spe = pow(max(dot(reflect(rd, n), l), 0.0), 16.0);
    vec3 col = pal(dot(n, vec3(0.3, 0.5, 0.2)) + 0.3 * length(q)) * (0.25 + 0.75 * dif) + spe * 0.5;
    return mix(col, bg, clamp(t / 12.0, 0.0, 1.0) * B.z);
}
"""

SHADERS: dict[str, str] = {
    "rm_spheres": """
const float STEP = 1.0;
float map(vec3 q) {
    float d = q.y + 1.0 + 0.5 * A.w;
    for (int i = 0; i < 4; i++) {
        vec3 c = (hash32(vec2(float(i), B.w * 91.0)) - 0.5) * vec3(2.0, 1.2, 2.0);
        float r = mix(0.25, 0.7, hash12(vec2(B.w * 17.0, float(i))));
        d = smin(d, length(q - c) - r, mix(0.05, 0.5, C.w));
    }
    return d;
}
""" + _RAYMARCH,
    "rm_torus_box": """
const float STEP = 0.8;
float map(vec3 q) {
    q.xz = rot(q.y * mix(-2.0, 2.0, A.w)) * q.xz;
    vec2 tq = vec2(length(q.xz) - mix(0.6, 1.0, B.w), q.y);
    float torus = length(tq) - mix(0.15, 0.4, C.w);
    vec3 b = abs(q) - vec3(0.7, mix(0.3, 0.9, B.w), 0.7);
    float box = length(max(b, 0.0)) + min(max(b.x, max(b.y, b.z)), 0.0) - 0.05;
    return mix(torus, box, smoothstep(0.3, 0.7, B.z));
}
""" + _RAYMARCH,
    "rm_lattice": """
const float STEP = 1.0;
float map(vec3 q) {
    float s = mix(0.8, 1.6, B.w);
    vec3 r = mod(q + 0.5 * s, s) - 0.5 * s;
    float sphere = length(r) - mix(0.15, 0.4, C.w) * s;
    vec3 b = abs(r) - vec3(mix(0.15, 0.35, C.w) * s);
    float box = length(max(b, 0.0)) + min(max(b.x, max(b.y, b.z)), 0.0);
    float lattice = max(mix(sphere, box, step(0.5, A.w)), 4.5 - length(q));  // hollow around camera
    return min(lattice, length(q) - mix(0.4, 1.0, B.z));
}
""" + _RAYMARCH,
    "rm_blob": """
const float STEP = 0.5;
float map(vec3 q) {
    float k = mix(3.0, 9.0, B.w);
    float disp = sin(q.x * k) * sin(q.y * k * mix(0.7, 1.3, A.w)) * sin(q.z * k);
    return length(q) - 1.0 + disp * mix(0.05, 0.25, C.w);
}
""" + _RAYMARCH,
    "metaballs": """
vec3 shade(vec2 p) {
    float f = 0.0;
    for (int i = 0; i < 6; i++) {
        vec2 c = hash22(vec2(float(i), A.x * 77.0)) * 2.0 - 1.0;
        float r = mix(0.1, 0.35, hash12(vec2(A.y * 31.0, float(i))));
        vec2 d = p - c;
        f += r * r / (dot(d, d) + 1e-3);
    }
    float th = mix(0.5, 2.0, A.z);
    float band = sin(f * mix(2.0, 10.0, A.w));
    return mix(pal(0.5 + 0.3 * band), pal2(f * 0.2), smoothstep(th - 0.1, th + 0.1, f));
}
""",
    "lissajous": """
vec3 shade(vec2 p) {
    float fa = floor(1.0 + A.x * 5.0), fb = floor(1.0 + A.y * 5.0), ph = A.z * TAU;
    float d = 1e3;
    vec2 prev = vec2(sin(ph), 0.0) * 0.85;
    for (int i = 1; i <= 64; i++) {
        float t = float(i) / 64.0 * TAU;
        vec2 cur = vec2(sin(fa * t + ph), sin(fb * t)) * 0.85;
        vec2 pa = p - prev, ba = cur - prev;
        float h = clamp(dot(pa, ba) / max(dot(ba, ba), 1e-6), 0.0, 1.0);
        d = min(d, length(pa - ba * h));
        prev = cur;
    }
    float w = mix(0.02, 0.1, A.w);
    return mix(pal(length(p)), pal2(0.2), smoothstep(w, w * 0.3, d));
}
""",
    "rectangles": """
vec3 shade(vec2 p) {
    vec3 col = pal(A.x);
    for (int i = 0; i < 10; i++) {
        float fi = float(i);
        vec3 h = hash32(vec2(fi * 3.1, A.y * 53.0));
        vec2 q = rot(h.z * TAU * A.z) * (p - (h.xy * 2.0 - 1.0));
        vec2 sz = hash22(vec2(A.w * 19.0, fi)) * mix(0.2, 0.8, B.x) + 0.05;
        float d = sdBox(q, sz);
        col = mix(col, pal(hash12(vec2(fi, B.y * 7.0))), smoothstep(0.02, -0.02, d));
    }
    return col;
}
""",
}
