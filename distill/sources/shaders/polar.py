"""Polar and fractal shaders: logarithmic spirals, kaleidoscopes, rose curves, tunnels,
sunbursts, Mandelbrot and Julia sets, Newton basins, kaleidoscopic IFS."""

SHADERS: dict[str, str] = {
    "log_spiral": """
vec3 shade(vec2 p) {
    vec2 d = p - (A.xy - 0.5);
    float a = atan(d.y, d.x), r = length(d) + 1e-4;
    float arms = floor(1.0 + A.z * 7.0);
    float v = sin(a * arms + log(r) * mix(-12.0, 12.0, A.w) + B.x * TAU);
    return mix(pal(r), pal2(a / TAU), smoothstep(-0.2, 0.2, v));
}
""",
    "kaleidoscope": """
vec3 shade(vec2 p) {
    float n = floor(3.0 + A.x * 9.0);
    float a = mod(atan(p.y, p.x), TAU / n);
    a = abs(a - PI / n);
    vec2 q = length(p) * vec2(cos(a), sin(a));
    float f = fbm(q * mix(1.0, 3.0, A.y) + OFF, 4);
    float rings = sin(length(q) * mix(5.0, 25.0, A.z) + f * 6.0);
    return pal(f * mix(0.8, 2.0, A.w) + 0.2 * rings);
}
""",
    "rose": """
vec3 shade(vec2 p) {
    float a = atan(p.y, p.x), r = length(p);
    float k = floor(2.0 + A.x * 6.0) / floor(1.0 + A.y * 3.0);
    float R = mix(0.5, 1.0, A.z);
    float d = 1e3;
    for (int i = 0; i < 3; i++) d = min(d, abs(r - R * abs(cos(k * (a + TAU * float(i))))));
    float w = mix(0.02, 0.12, A.w);
    return mix(pal(r), pal2(0.5 + a / TAU), smoothstep(w, 0.0, d));
}
""",
    "tunnel": """
vec3 shade(vec2 p) {
    float a = atan(p.y, p.x) / PI, r = length(p) + 1e-3;
    vec2 uv = vec2(a * floor(1.0 + A.x * 6.0), mix(0.3, 1.0, A.y) / r + B.x * 5.0);
    vec2 s = sin(uv * PI * vec2(2.0, mix(2.0, 6.0, A.z)));
    float c = clamp(0.5 + s.x * s.y * 4.0, 0.0, 1.0);
    return mix(pal(0.1), pal(0.6), c) * clamp(r * mix(1.0, 4.0, A.w), 0.0, 1.0);
}
""",
    "sunburst": """
vec3 shade(vec2 p) {
    vec2 d = p - (A.xy - 0.5) * 1.5;
    float a = atan(d.y, d.x), r = length(d);
    float rays = smoothstep(-0.1, 0.1, sin(a * floor(3.0 + A.z * 20.0) + r * mix(0.0, 8.0, B.x)));
    float rings = smoothstep(-0.1, 0.1, sin(r * mix(5.0, 30.0, A.w)));
    return pal(mix(rays, abs(rays - rings), step(0.5, B.y)) * 0.5 + r * 0.3);
}
""",
    "mandelbrot": """
vec3 shade(vec2 p) {
    float th = A.x * TAU;
    vec2 c0 = 0.5 * vec2(cos(th), sin(th)) - 0.25 * vec2(cos(2.0 * th), sin(2.0 * th));
    if (A.w < 0.3) c0 = vec2(-1.0, 0.0) + 0.25 * vec2(cos(th), sin(th));
    vec2 c = c0 + p * exp2(-A.y * 6.0) * 1.2;
    vec2 z = vec2(0.0);
    float it = 0.0;
    for (int i = 0; i < 64; i++) {
        z = vec2(z.x * z.x - z.y * z.y, 2.0 * z.x * z.y) + c;
        if (dot(z, z) > 64.0) break;
        it += 1.0;
    }
    if (it >= 64.0) return pal2(0.0) * B.x;
    return pal((it - log2(log2(dot(z, z))) + 4.0) * mix(0.02, 0.1, A.z));
}
""",
    "julia": """
vec3 shade(vec2 p) {
    float th = A.x * TAU;
    vec2 c = (0.5 * vec2(cos(th), sin(th)) - 0.25 * vec2(cos(2.0 * th), sin(2.0 * th)))
             * mix(0.92, 1.05, A.y);
    vec2 z = p * mix(0.8, 1.6, A.z);
    float it = 0.0;
    for (int i = 0; i < 48; i++) {
        z = vec2(z.x * z.x - z.y * z.y, 2.0 * z.x * z.y) + c;
        if (dot(z, z) > 16.0) break;
        it += 1.0;
    }
    float sm = it - log2(max(log2(dot(z, z)), 1e-3));
    return pal(sm * mix(0.03, 0.12, A.w) + B.x);
}
""",
    "newton": """
vec2 cmul(vec2 a, vec2 b) { return vec2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }
vec2 cdiv(vec2 a, vec2 b) { return vec2(a.x * b.x + a.y * b.y, a.y * b.x - a.x * b.y) / max(dot(b, b), 1e-9); }
vec3 shade(vec2 p) {
    vec2 z = p * mix(0.7, 2.5, A.x) + (A.yz - 0.5);
    vec2 k = (B.xy - 0.5) * 0.8;
    float it = 0.0;
    for (int i = 0; i < 24; i++) {
        vec2 z2 = cmul(z, z);
        vec2 dz = cdiv(cmul(z2, z) - vec2(1.0, 0.0) - k, 3.0 * z2);
        z -= dz * mix(0.8, 1.4, A.w);
        if (dot(dz, dz) < 1e-6) break;
        it += 1.0;
    }
    return pal(atan(z.y, z.x) / TAU + 0.5) * (1.0 - it / 30.0 * mix(0.2, 1.0, B.z));
}
""",
    "kifs": """
vec3 shade(vec2 p) {
    float a = A.x * PI, sc = mix(1.3, 2.0, A.w), s = 1.0, trap = 1e9;
    vec2 o = vec2(mix(0.2, 0.8, A.y), mix(0.0, 0.6, A.z));
    for (int i = 0; i < 7; i++) {
        p = abs(p) - o;
        p = rot(a) * p * sc;
        s *= sc;
        trap = min(trap, abs(p.y + B.x - 0.5) / s);
    }
    float d = sdBox(p, vec2(0.6, 0.15)) / s;
    return mix(pal(log(trap + 1e-4) * 0.15), pal2(0.0), smoothstep(0.01, 0.0, d));
}
""",
}
