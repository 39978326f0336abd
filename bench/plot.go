package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot sizes and limits.
const (
	plotWidth  = 10 * vg.Inch
	plotHeight = 11 * vg.Inch
	plotDPI    = 96
	// maxScatter bounds the points drawn in the latency-over-time panel.
	maxScatter = 20_000
	// timeBins is the number of time bins of the percentile and throughput lines.
	timeBins = 60
	// histBins is the number of log-spaced bins of the latency histogram.
	histBins = 60
)

// kindColor is the colour of each operation kind in plots.
var kindColor = [numOpKinds]color.RGBA{
	OpPut:    {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	OpGet:    {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	OpDelete: {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

func withAlpha(c color.RGBA, a uint8) color.NRGBA {
	return color.NRGBA{R: c.R, G: c.G, B: c.B, A: a}
}

// WritePlotFile writes the run's plot as a PNG file at path (see WritePlot).
func (r *Result) WritePlotFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := r.WritePlot(f); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// WritePlot draws the run as a PNG of three panels: latency over time (sampled
// operations as dots, the p50 and p99 of each time bin as lines), throughput over
// time, and a histogram of latencies per operation kind.
func (r *Result) WritePlot(w io.Writer) error {
	panels := [][]*plot.Plot{{r.latencyOverTime()}, {r.throughputOverTime()}, {r.latencyHistogram()}}
	img := vgimg.NewWith(vgimg.UseWH(plotWidth, plotHeight), vgimg.UseDPI(plotDPI))
	dc := draw.New(img)
	tiles := draw.Tiles{
		Rows: len(panels), Cols: 1,
		PadX: vg.Millimeter, PadY: 6 * vg.Millimeter,
		PadTop: 4 * vg.Millimeter, PadBottom: 2 * vg.Millimeter,
		PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter,
	}
	canvases := plot.Align(panels, tiles, dc)
	for i := range panels {
		panels[i][0].Draw(canvases[i][0])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

// title is the first line of the top panel: what ran and its headline figures.
func (r *Result) title() string {
	what := "workload"
	if r.Workload == nil {
		what = fmt.Sprintf("mix %s, %d-byte values", r.Mix, r.ValueSize)
	}
	return fmt.Sprintf("ballot bench: %d clients, %s, gets %s — %.0f ops/s, p50 %.2f ms, p99 %.2f ms over %.1f s",
		r.Clients, what, r.Read, r.Throughput(&r.Total), ms(r.Total.Hist.Quantile(0.5)),
		ms(r.Total.Hist.Quantile(0.99)), r.Wall.Seconds())
}

// emptyNote marks a panel that has nothing to show.
func emptyNote(p *plot.Plot) {
	p.Title.Text += " (no successful operations)"
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
}

func (r *Result) latencyOverTime() *plot.Plot {
	p := plot.New()
	p.Title.Text = r.title() + "\nlatency over time (dots: sampled operations; per time bin, solid line: p50, dashed: p99)"
	p.X.Label.Text = "seconds since the measured phase started"
	p.Y.Label.Text = "latency, ms (log scale)"
	p.Legend.Top = true
	if len(r.Samples) == 0 {
		emptyNote(p)
		return p
	}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.X.Min = 0
	p.X.Tick.Marker = secondsTicks{}
	p.Add(plotter.NewGrid())
	step := max(1, len(r.Samples)/maxScatter)
	span := r.Wall.Seconds()
	if last := r.Samples[len(r.Samples)-1].At.Seconds(); last > span {
		span = last
	}
	binWidth := max(span/timeBins, 1e-3)
	for _, k := range r.Kinds {
		var dots plotter.XYs
		var bins [timeBins + 1][]float64
		for i, s := range r.Samples {
			if s.Kind != k {
				continue
			}
			y := max(ms(s.Latency), 1e-3)
			if i%step == 0 {
				dots = append(dots, plotter.XY{X: s.At.Seconds(), Y: y})
			}
			b := min(int(s.At.Seconds()/binWidth), timeBins)
			bins[b] = append(bins[b], y)
		}
		if len(dots) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(dots)
		if err != nil {
			continue
		}
		sc.GlyphStyle.Color = withAlpha(kindColor[k], 0x50)
		sc.GlyphStyle.Radius = vg.Points(1)
		sc.GlyphStyle.Shape = draw.CircleGlyph{}
		p.Add(sc)
		var p50, p99 plotter.XYs
		for b, ys := range bins {
			if len(ys) < 5 {
				continue
			}
			slices.Sort(ys)
			x := (float64(b) + 0.5) * binWidth
			p50 = append(p50, plotter.XY{X: x, Y: ys[(len(ys)-1)/2]})
			p99 = append(p99, plotter.XY{X: x, Y: ys[int(math.Ceil(0.99*float64(len(ys))))-1]})
		}
		for _, l := range []struct {
			xys  plotter.XYs
			dash []vg.Length
		}{{p50, nil}, {p99, []vg.Length{vg.Points(4), vg.Points(2)}}} {
			if len(l.xys) == 0 {
				continue
			}
			line, err := plotter.NewLine(l.xys)
			if err != nil {
				continue
			}
			line.LineStyle.Color = kindColor[k]
			line.LineStyle.Width = vg.Points(1.5)
			line.LineStyle.Dashes = l.dash
			p.Add(line)
			if l.dash == nil {
				p.Legend.Add(k.String(), line)
			}
		}
	}
	return p
}

func (r *Result) throughputOverTime() *plot.Plot {
	p := plot.New()
	p.Title.Text = "throughput over time (successes per second)"
	p.X.Label.Text = "seconds since the measured phase started"
	p.Y.Label.Text = "ops/s"
	p.Legend.Top = true
	windows := 0
	for _, k := range r.Kinds {
		windows = max(windows, len(r.Timeline[k]))
	}
	if windows == 0 || r.Window <= 0 {
		emptyNote(p)
		return p
	}
	p.X.Min = 0
	p.X.Tick.Marker = secondsTicks{}
	p.Add(plotter.NewGrid())
	// Merge windows so that there are at most timeBins points, but always whole
	// windows; the last bin may be partly empty, so it is scaled by its length.
	per := max(1, (windows+timeBins-1)/timeBins)
	binSec := (time.Duration(per) * r.Window).Seconds()
	series := func(counts func(w int) uint64) plotter.XYs {
		var xys plotter.XYs
		for b := 0; b*per < windows; b++ {
			var n uint64
			for w := b * per; w < min((b+1)*per, windows); w++ {
				n += counts(w)
			}
			length := binSec
			if end := float64(b+1) * binSec; end > r.Wall.Seconds() {
				length = r.Wall.Seconds() - float64(b)*binSec
			}
			if length < binSec/4 {
				continue // too short a tail to give a fair rate
			}
			xys = append(xys, plotter.XY{X: (float64(b) + 0.5) * binSec, Y: float64(n) / length})
		}
		return xys
	}
	at := func(k OpKind, w int) uint64 {
		if w < len(r.Timeline[k]) {
			return r.Timeline[k][w]
		}
		return 0
	}
	add := func(name string, c color.Color, dash []vg.Length, xys plotter.XYs) {
		if len(xys) == 0 {
			return
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return
		}
		line.LineStyle.Color = c
		line.LineStyle.Width = vg.Points(1.5)
		line.LineStyle.Dashes = dash
		p.Add(line)
		p.Legend.Add(name, line)
	}
	for _, k := range r.Kinds {
		add(k.String(), kindColor[k], nil, series(func(w int) uint64 { return at(k, w) }))
	}
	if len(r.Kinds) > 1 {
		add("total", color.Black, []vg.Length{vg.Points(4), vg.Points(2)}, series(func(w int) uint64 {
			var n uint64
			for _, k := range r.Kinds {
				n += at(k, w)
			}
			return n
		}))
	}
	p.Y.Min = 0
	return p
}

func (r *Result) latencyHistogram() *plot.Plot {
	p := plot.New()
	p.Title.Text = "latency histogram (share of each operation kind's successes per bin; log-spaced bins)"
	p.X.Label.Text = "latency, ms (log scale)"
	p.Y.Label.Text = "% of operations"
	p.Legend.Top = true
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, k := range r.Kinds {
		if h := &r.PerOp[k].Hist; h.Count() > 0 {
			lo = min(lo, max(ms(h.Min()), 1e-3))
			hi = max(hi, max(ms(h.Max()), 1e-3))
		}
	}
	if math.IsInf(lo, 1) {
		emptyNote(p)
		return p
	}
	if hi <= lo*1.01 {
		lo, hi = lo/1.5, hi*1.5
	}
	lo, hi = lo*0.95, hi*1.05
	logLo, logHi := math.Log(lo), math.Log(hi)
	width := (logHi - logLo) / histBins
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	for _, k := range r.Kinds {
		h := &r.PerOp[k].Hist
		if h.Count() == 0 {
			continue
		}
		bins := make([]plotter.HistogramBin, histBins)
		for i := range bins {
			bins[i].Min = math.Exp(logLo + float64(i)*width)
			bins[i].Max = math.Exp(logLo + float64(i+1)*width)
		}
		total := float64(h.Count())
		h.Buckets(func(blo, bhi time.Duration, n uint64) {
			// Put each histogram bucket in the plot bin of its midpoint.
			mid := max((ms(blo)+ms(bhi))/2, 1e-3)
			i := int((math.Log(mid) - logLo) / width)
			i = min(max(i, 0), histBins-1)
			bins[i].Weight += 100 * float64(n) / total
		})
		hp := &plotter.Histogram{Bins: bins, Width: width, FillColor: withAlpha(kindColor[k], 0x60)}
		hp.LineStyle.Color = kindColor[k]
		hp.LineStyle.Width = vg.Points(0.8)
		p.Add(hp)
		p.Legend.Add(fmt.Sprintf("%s (%d ops)", k, h.Count()), hp)
	}
	p.Y.Min = 0
	return p
}

// secondsTicks labels a time axis at a round step that gives 4 to 10 labels.
type secondsTicks struct{}

func (secondsTicks) Ticks(lo, hi float64) []plot.Tick {
	span := hi - lo
	step := 0.1
	for _, s := range []float64{0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600} {
		step = s
		if span/s <= 10 {
			break
		}
	}
	var ticks []plot.Tick
	for i := math.Ceil(lo / step); i*step <= hi+step/1e6 && len(ticks) < 1000; i++ {
		v := i * step
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	return ticks
}
