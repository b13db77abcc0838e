"""Wave shaders: plane-wave and radial interference, moiré, plasma, Chladni plates, zone plates,
Gabor patches, warped stripes."""

SHADERS: dict[str, str] = {
    "sine_interference": """
vec3 shade(vec2 p) {
    float s = 0.0;
    int n = 2 + int(A.w * 3.0);
    for (int i = 0; i < 5; i++) {
        if (i >= n) break;
        float fi = float(i);
        float ang = TAU * fract(A.x + fi * 0.618 + B.x * fi);
        float f = mix(2.0, 14.0, fract(A.y * (fi + 1.0) * 1.37 + B.y * fi));
        s += sin(dot(p, vec2(cos(ang), sin(ang))) * f + fi * B.z * TAU);
    }
    return pal(s / float(n) * 0.5 + 0.5);
}
""",
    "radial_interference": """
vec3 shade(vec2 p) {
    float f = mix(8.0, 40.0, B.w);
    float s = sin(length(p - (A.xy * 2.0 - 1.0)) * f)
            + sin(length(p - (A.zw * 2.0 - 1.0)) * f * mix(0.7, 1.3, B.z))
            + sin(length(p - (B.xy * 2.0 - 1.0)) * f * mix(0.6, 1.4, C.w));
    return pal(s / 6.0 + 0.5);
}
""",
    "moire": """
vec3 shade(vec2 p) {
    float f = mix(10.0, 45.0, A.x);
    float g1 = 0.5 + 0.5 * sin(p.x * f);
    vec2 q = rot(mix(0.03, 0.4, A.y)) * p * mix(0.9, 1.1, A.z);
    float g2 = 0.5 + 0.5 * sin(q.x * f);
    float g3 = 0.5 + 0.5 * sin(length(p - (B.xy - 0.5)) * f * mix(0.8, 1.2, B.z));
    float m = mix(g1 * g2, g1 * g3, step(0.5, A.w));
    return mix(pal(0.1), pal(0.7), m);
}
""",
    "plasma": """
vec3 shade(vec2 p) {
    p *= mix(2.0, 6.0, A.x);
    float v = sin(p.x + A.y * TAU) + sin(p.y * mix(0.5, 2.0, A.z) + B.x * TAU)
            + sin((p.x + p.y) * mix(0.5, 1.5, A.w) + B.y * TAU)
            + sin(length(p + (B.zw - 0.5) * 4.0) * mix(1.0, 3.0, C.w));
    return pal(v * 0.125 + 0.5);
}
""",
    "chladni": """
vec3 shade(vec2 p) {
    float n = floor(1.0 + A.x * 7.0), m = floor(1.0 + A.y * 7.0);
    float v = cos(n * PI * p.x) * cos(m * PI * p.y)
            - mix(-1.0, 1.0, A.z) * cos(m * PI * p.x) * cos(n * PI * p.y);
    float line = smoothstep(mix(0.05, 0.4, B.x), 0.0, abs(v));
    return mix(pal(v * 0.25 + 0.5), pal2(line), step(0.4, A.w));
}
""",
    "zone_plate": """
vec3 shade(vec2 p) {
    vec2 d = p - (A.xy - 0.5);
    float v = sin(dot(d, d) * mix(10.0, 70.0, A.z) + A.w * TAU);
    float w = sin(d.x * d.y * mix(5.0, 40.0, B.y));
    return pal(0.5 + 0.5 * mix(v, w, step(0.6, B.x)));
}
""",
    "gabor": """
vec3 shade(vec2 p) {
    float s = 0.0;
    for (int i = 0; i < 6; i++) {
        float fi = float(i);
        vec2 c = hash22(vec2(fi, A.x * 100.0)) * 2.0 - 1.0;
        float ang = hash12(vec2(A.y * 50.0, fi)) * TAU;
        float f = mix(6.0, 20.0, hash12(vec2(fi, A.z * 37.0)));
        float sig = mix(0.15, 0.5, hash12(vec2(B.x * 13.0, fi)));
        vec2 d = p - c;
        s += exp(-dot(d, d) / (2.0 * sig * sig)) * cos(dot(d, vec2(cos(ang), sin(ang))) * f);
    }
    return pal(0.5 + 0.4 * s);
}
""",
    "warped_stripes": """
vec3 shade(vec2 p) {
    vec2 q = p + mix(0.1, 0.6, A.x) * vec2(sin(p.y * mix(2.0, 8.0, A.y) + B.x * TAU),
                                           sin(p.x * mix(2.0, 8.0, A.z) + B.y * TAU));
    float v = sin(q.x * mix(6.0, 30.0, A.w));
    return mix(pal(0.2), pal(0.8), clamp(0.5 + v * mix(1.0, 12.0, B.z), 0.0, 1.0));
}
""",
}
