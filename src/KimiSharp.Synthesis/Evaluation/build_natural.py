#!/usr/bin/env python3
"""Writes natural.jsonl: the held-out natural-phrasing questions of `kimi eval --suite natural`.

The questions are written here by hand, away from the generator's templates (src/KimiSharp.Synthesis/TaskGenerator.cs);
their expected answers are computed here, in Python (fractions, datetime, the unit definitions below, the knowledge
base file), independently of the C# tools. NaturalSuiteTests checks every key again with the C# tools through each
item's reference call, so a key both computations do not agree on fails the build.
Run from the repository root: python3 src/KimiSharp.Synthesis/Evaluation/build_natural.py
"""
import json, math, os, re
from datetime import date, timedelta
from decimal import Decimal, ROUND_HALF_UP
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
KB = {e["name"]: e for e in json.load(open(os.path.join(ROOT, "models", "k2-nano", "knowledge_base.json")))}

items = []

def fmt(value):
    """Like the tools: at most 6 decimals, half away from zero, no trailing zeros."""
    d = Decimal(value.numerator) / Decimal(value.denominator) if isinstance(value, Fraction) else Decimal(repr(value))
    sign = -1 if d < 0 else 1
    q = (abs(d)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP) * sign
    s = format(q, "f")
    if "." in s: s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s

def pyeval(expression):
    """Evaluates a calculator expression with exact fractions (floats only for roots and fractional powers)."""
    e = expression.replace(",", "").replace("^", "**").replace("×", "*").replace("÷", "/")
    e = re.sub(r"(\d+(?:\.\d+)?)%", r"(\1/100)", e)
    e = re.sub(r"(\d+(?:\.\d+)?)", r"F('\1')", e)
    env = {"F": Fraction, "sqrt": lambda x: Fraction(math.sqrt(x)), "cbrt": lambda x: Fraction(math.copysign(abs(x) ** (1 / 3), x)),
           "abs": abs, "round": lambda x: Fraction(math.floor(x + Fraction(1, 2))) if x >= 0 else -Fraction(math.floor(-x + Fraction(1, 2)))}
    v = eval(e, {"__builtins__": {}}, env)
    return Fraction(v) if not isinstance(v, Fraction) else v

def add(category, prompt, expect, reference=None):
    item = {"id": f"{category}-{sum(1 for i in items if i['category'] == category) + 1:03d}", "category": category, "prompt": prompt,
            "expect": expect}
    if reference: item["reference"] = reference
    items.append(item)

def calc(category, prompt, expression):
    add(category, prompt, {"number": fmt(pyeval(expression))}, [{"name": "calculator", "arguments": {"expression": expression}}])

# ---------------------------------------------------------------- arithmetic: verbs, word orders, symbols
for prompt, expression in [
    ("Multiply 48 by 0.75.", "48*0.75"),
    ("Subtract 478 from 1000.", "1000-478"),
    ("What is 2,500 + 3,750?", "2500+3750"),
    ("Compute 1234 * 5678 for me.", "1234*5678"),
    ("what's 17 + 26", "17+26"),
    ("How much is 9 × 8?", "9*8"),
    ("156 ÷ 12 = ?", "156/12"),
    ("Could you divide 7,200 by 45?", "7200/45"),
    ("Sum of 318 and 457?", "318+457"),
    ("Take 89 away from 312.", "312-89"),
    ("I need 63 multiplied by 17.", "63*17"),
    ("What do you get if you add 1.25 to 3.5?", "1.25+3.5"),
    ("Work out 56 / 7 please", "56/7"),
    ("Tell me what 405 minus 219 comes to.", "405-219"),
    ("How much is twelve times 15? (12 x 15)", "12*15"),
    ("Please find the product of 23 and 41.", "23*41"),
    ("Find the difference between 1,000 and 387.", "1000-387"),
    ("What's the quotient when 960 is divided by 16?", "960/16"),
    ("Divide 1 by 8.", "1/8"),
    ("add up 14, 29, 33 and 71", "14+29+33+71"),
    ("what is the total of 250, 375 and 125.50?", "250+375+125.50"),
    ("Quick one: 77 * 3", "77*3"),
    ("Evaluate 18 + 6 × 4.", "18+6*4"),
    ("Evaluate (18 + 6) × 4.", "(18+6)*4"),
    ("What is 100 - 3 * 12 + 4?", "100-3*12+4"),
    ("Solve: 250 / (3 + 2)", "250/(3+2)"),
    ("3.75 times 8 is what?", "3.75*8"),
    ("If I multiply 0.2 and 0.35, what comes out?", "0.2*0.35"),
    ("Can you tell me 9,999 plus 1?", "9999+1"),
    ("double 437", "437*2"),
    ("What's half of 1,290?", "1290/2"),
    ("Triple 86, please.", "86*3"),
    ("Increase 640 by 75.", "640+75"),
    ("Decrease 902 by 58.", "902-58"),
    ("How many is 45 lots of 12?", "45*12"),
    ("what is -15 plus 40", "-15+40"),
    ("Give me 7 - 19.", "7-19"),
    ("Calculate the average of 12, 18 and 27.", "(12+18+27)/3"),
    ("What is the mean of 4, 8, 15 and 21?", "(4+8+15+21)/4"),
    ("(45 + 55) / 8 = ?", "(45+55)/8"),
    ("Whats 1000000 divided by 250", "1000000/250"),
    ("How much is 0.1 + 0.7?", "0.1+0.7"),
    ("Multiply 2.5 by 2.5 by 2.5.", "2.5*2.5*2.5"),
    ("What do 13 and 29 make together?", "13+29"),
    ("12,345 minus 6,789 equals?", "12345-6789"),
]:
    calc("arithmetic", prompt, expression)

# ---------------------------------------------------------------- powers and roots
for prompt, expression in [
    ("What is 2 raised to the power of 20?", "2^20"),
    ("What's 7 squared?", "7^2"),
    ("15 squared?", "15^2"),
    ("What is 4 cubed?", "4^3"),
    ("Compute 3^5.", "3^5"),
    ("2**16 = ?", "2**16"),
    ("What is the square root of 144?", "sqrt(144)"),
    ("square root of 2", "sqrt(2)"),
    ("√225?", "sqrt(225)"),
    ("What's the cube root of 27?", "cbrt(27)"),
    ("Find the cube root of 1000.", "cbrt(1000)"),
    ("10 to the power of 6", "10^6"),
    ("What is 1.5 to the power of 3?", "1.5^3"),
    ("What is 5 to the 4th power?", "5^4"),
    ("Raise 9 to the power 3.", "9^3"),
    ("sqrt(50) please", "sqrt(50)"),
    ("How much is 12 squared plus 5 squared?", "12^2+5^2"),
    ("What's the square root of 81 plus the square root of 16?", "sqrt(81)+sqrt(16)"),
    ("Work out 2^10 - 24.", "2^10-24"),
    ("What's (3 + 4) squared?", "(3+4)^2"),
    ("What is 0.5 squared?", "0.5^2"),
    ("What is 11 to the power of 2, times 3?", "11^2*3"),
    ("Whats the squareroot of 625", "sqrt(625)"),
    ("What is 2 to the -3?", "2^-3"),
    ("Take the square root of 1.44.", "sqrt(1.44)"),
]:
    calc("powers-roots", prompt, expression)

# ---------------------------------------------------------------- percentages
for prompt, expression in [
    ("What's 15 percent of 80?", "15%*80"),
    ("Find 8 per cent of 2,450.", "8%*2450"),
    ("How much is 12.5% of 640?", "12.5%*640"),
    ("Calculate 20% of 35.", "20%*35"),
    ("What is 30 as a percentage of 120?", "30/120*100"),
    ("What percent of 250 is 45?", "45/250*100"),
    ("Increase 80 by 25%.", "80+80*25%"),
    ("Decrease 1,500 by 12%.", "1500-1500*12%"),
    ("Add 19% VAT to 240.", "240*1.19"),
    ("What's 240 plus 15 percent?", "240+240*15%"),
    ("Take 30% off 90.", "90-90*30%"),
    ("A tip of 18% on a 62 dollar bill is how much?", "62*18%"),
    ("5 percent of 3,000,000?", "5%*3000000"),
    ("0.5% of 18,000 - how much is that?", "0.5%*18000"),
    ("By what percentage did sales grow from 400 to 520?", "(520-400)/400*100"),
    ("The price fell from 80 to 60. What was the percentage drop?", "(80-60)/80*100"),
    ("If 45 of 60 students passed, what percentage passed?", "45/60*100"),
    ("How much is a quarter percent of 40,000? (0.25%)", "0.25%*40000"),
    ("what's 150% of 64", "150%*64"),
    ("Show me 7.5 per cent of 1,200.", "7.5%*1200"),
    ("What's 3% of 1,950.50?", "3%*1950.50"),
    ("I got 42 out of 50 on a test. What is that in percent?", "42/50*100"),
]:
    calc("percent", prompt, expression)

# ---------------------------------------------------------------- word problems: two sentences, money and quantities, several steps
for prompt, expression in [
    ("I bought 3 notebooks at $2.40 each and a pen for $1.15. How much did I spend?", "3*2.40+1.15"),
    ("A box holds 24 eggs. How many eggs are in 17 boxes?", "24*17"),
    ("We have 156 chairs to split evenly among 12 rooms. How many chairs go in each room?", "156/12"),
    ("My rent is 1,250 a month. What do I pay in a year?", "1250*12"),
    ("A car uses 6.5 liters of fuel per 100 km. How much fuel does it need for 340 km?", "6.5*340/100"),
    ("Tickets cost 14 dollars for adults and 9 for kids. What do 2 adults and 3 kids pay?", "2*14+3*9"),
    ("I had 500 euros and spent 137.80. How much is left?", "500-137.80"),
    ("A recipe needs 250 g of flour per loaf. How many grams for 7 loaves?", "250*7"),
    ("Sara earns 18.50 an hour and worked 37 hours this week. What did she earn?", "18.50*37"),
    ("A train travels at 120 km/h for 2.5 hours. How far does it go?", "120*2.5"),
    ("There are 28 students and each needs 3 pencils. Pencils come in packs of 12. How many pencils are needed in total?", "28*3"),
    ("A shirt costs 40 and is on sale for 25% off. What's the sale price?", "40-40*25%"),
    ("Split a 96 dollar dinner bill between 4 friends. How much does each pay?", "96/4"),
    ("I walk 4.2 km every day. How far do I walk in 30 days?", "4.2*30"),
    ("A tank holds 750 liters and is 40% full. How many liters are in it?", "750*40%"),
    ("Pizza slices: 8 per pizza, 5 pizzas ordered, 29 slices eaten. How many slices are left?", "8*5-29"),
    ("A phone costs 899 and I pay it off in 12 equal monthly payments. How much is each payment?", "899/12"),
    ("The garden is 12.5 m long and 8 m wide. What is its area in square meters?", "12.5*8"),
    ("I saved 75 dollars a week for 16 weeks and then spent 420. How much do I have now?", "75*16-420"),
    ("A bakery sold 345 croissants on Monday and 412 on Tuesday. How many in total over both days?", "345+412"),
    ("Water costs 0.003 dollars per liter. What do 2,400 liters cost?", "0.003*2400"),
    ("A bag of rice weighs 2.5 kg. I have 14 bags. What's the total weight in kg?", "2.5*14"),
    ("The temperature was -4 degrees and rose by 11 degrees. What is it now?", "-4+11"),
    ("Each crate weighs 18.75 kg. What do 24 crates weigh?", "18.75*24"),
    ("A loan of 5,000 has 6% simple interest per year. How much interest after 3 years?", "5000*6%*3"),
    ("Three friends scored 87, 92 and 78. What was their average score?", "(87+92+78)/3"),
    ("A marathon is 42.195 km. How far is half a marathon?", "42.195/2"),
    ("I need 2.75 m of fabric for each curtain and want 6 curtains. How many meters do I need?", "2.75*6"),
    ("Gas is 1.89 per liter. I filled up 43 liters. What did I pay?", "1.89*43"),
    ("A class of 32 goes on a trip that costs 14.50 per student plus 120 for the bus. What's the total cost?", "32*14.50+120"),
    ("We drove 365 miles and used 11 gallons. How many miles per gallon is that?", "365/11"),
    ("A printer prints 22 pages per minute. How many pages in 45 minutes?", "22*45"),
    ("Apples are 3 for 2 dollars. How much do 27 apples cost?", "27/3*2"),
    ("Out of 1,200 people surveyed, 35% said yes. How many people said yes?", "1200*35%"),
    ("My salary went from 42,000 to 46,200. By how much did it go up?", "46200-42000"),
    ("A 2 liter bottle is poured into glasses of 0.25 liters. How many glasses can be filled?", "2/0.25"),
]:
    calc("word-problems", prompt, expression)

# ---------------------------------------------------------------- several steps in one question
for prompt, expression in [
    ("First add 15 and 27, then multiply the result by 3.", "(15+27)*3"),
    ("Take 200, subtract 35, then divide by 5.", "(200-35)/5"),
    ("What's 12 squared minus the square root of 49?", "12^2-sqrt(49)"),
    ("Start with 1,000. Add 10% and then take 10% off the result. What do you end with?", "1000*1.1*0.9"),
    ("Multiply 6 by 7, add 8, and halve it.", "(6*7+8)/2"),
    ("Add 3.5 to 4.25 and multiply by 4.", "(3.5+4.25)*4"),
    ("Sum 15 and 20 first, then divide that by 5.", "(15+20)/5"),
    ("Compute 2 to the 5th, minus 2 cubed, plus 1.", "2^5-2^3+1"),
    ("Subtract 18 from 50, square the answer.", "(50-18)^2"),
    ("Divide 84 by 7, then add 19, then multiply by 2.", "(84/7+19)*2"),
    ("What is 30% of 250, plus 20% of 150?", "30%*250+20%*150"),
    ("Double 125, then take away 61.", "125*2-61"),
    ("Find the square root of 196, then multiply it by 5.", "sqrt(196)*5"),
    ("I have 3 boxes with 48 items and 2 boxes with 36 items. How many items altogether?", "3*48+2*36"),
    ("Add 1/4 and 1/8 (as decimals: 0.25 + 0.125), then times 8.", "(0.25+0.125)*8"),
    ("Take 5,000, subtract 1,250 twice, then divide by 10.", "(5000-1250-1250)/10"),
    ("How much is 4 times 9, minus 7 times 3?", "4*9-7*3"),
    ("What is (120 + 45) × 2 ÷ 3?", "(120+45)*2/3"),
]:
    calc("multi-step", prompt, expression)

# ---------------------------------------------------------------- units: names, plurals, symbols, both directions
UNITS = {  # size in the base unit (m, kg, l, s)
    "km": Fraction(1000), "m": Fraction(1), "cm": Fraction(1, 100), "mm": Fraction(1, 1000), "mi": Fraction("1609.344"),
    "ft": Fraction("0.3048"), "in": Fraction("0.0254"), "yd": Fraction("0.9144"),
    "kg": Fraction(1), "g": Fraction(1, 1000), "lb": Fraction("0.45359237"), "oz": Fraction("0.028349523125"),
    "l": Fraction(1), "ml": Fraction(1, 1000), "gal": Fraction("3.785411784"),
    "s": Fraction(1), "min": Fraction(60), "h": Fraction(3600), "day": Fraction(86400),
}

def convert(value, frm, to):
    v = Fraction(str(value))
    temps = {"C", "F", "K"}
    if frm in temps:
        c = v if frm == "C" else (v - 32) * Fraction(5, 9) if frm == "F" else v - Fraction("273.15")
        return c if to == "C" else c * Fraction(9, 5) + 32 if to == "F" else c + Fraction("273.15")
    return v * UNITS[frm] / UNITS[to]

for prompt, value, frm, to in [
    ("Convert 5 km to miles", 5, "km", "mi"),
    ("how many feet are in 3 meters", 3, "m", "ft"),
    ("10 miles in km?", 10, "mi", "km"),
    ("What's 72 inches in centimeters?", 72, "in", "cm"),
    ("How tall is 6 feet in metres?", 6, "ft", "m"),
    ("I'm 180 cm tall. How many inches is that?", 180, "cm", "in"),
    ("Turn 2.5 kilometres into meters.", "2.5", "km", "m"),
    ("100 yards = how many meters?", 100, "yd", "m"),
    ("How many millimeters in 4.2 cm?", "4.2", "cm", "mm"),
    ("A marathon is 26.2 miles. How far is that in kilometers?", "26.2", "mi", "km"),
    ("convert 150 lbs to kg", 150, "lb", "kg"),
    ("70 kg equals how many pounds?", 70, "kg", "lb"),
    ("What do 12 ounces weigh in grams?", 12, "oz", "g"),
    ("500 g in ounces?", 500, "g", "oz"),
    ("How many grams are there in 2.2 pounds?", "2.2", "lb", "g"),
    ("Change 3,500 grams to kilograms.", 3500, "g", "kg"),
    ("5 gallons - how many liters would that be?", 5, "gal", "l"),
    ("20 litres to gallons please", 20, "l", "gal"),
    ("How many milliliters are in 1.5 liters?", "1.5", "l", "ml"),
    ("750 ml is how many litres?", 750, "ml", "l"),
    ("What's 90 minutes in hours?", 90, "min", "h"),
    ("How many seconds are in 2 hours?", 2, "h", "s"),
    ("How many hours are in 3 days?", 3, "day", "h"),
    ("Convert 45 min to seconds.", 45, "min", "s"),
    ("10,000 seconds is how many minutes?", 10000, "s", "min"),
    ("It's 30 degrees Celsius. What's that in Fahrenheit?", 30, "C", "F"),
    ("98.6 °F in Celsius?", "98.6", "F", "C"),
    ("0 °C is how many kelvin?", 0, "C", "K"),
    ("convert 212 fahrenheit to celsius", 212, "F", "C"),
    ("-10 C to F", -10, "C", "F"),
    ("300 K in degrees Celsius?", 300, "K", "C"),
    ("Oven says 350°F. What is that in °C?", 350, "F", "C"),
    ("How many km is 1 mile?", 1, "mi", "km"),
    ("What is one foot in inches?", 1, "ft", "in"),
    ("Express 8 feet in yards.", 8, "ft", "yd"),
    ("How many meters are in half a mile? (0.5 mi)", "0.5", "mi", "m"),
    ("Uh, 7500 m - how many km is that?", 7500, "m", "km"),
    ("Change 16 oz into pounds.", 16, "oz", "lb"),
    ("A 1 gallon jug holds how many ml?", 1, "gal", "ml"),
    ("What's 2 lb in ounces?", 2, "lb", "oz"),
    ("I ran 8 kilometers. How many miles is that?", 8, "km", "mi"),
    ("My suitcase weighs 23 kilos. What's that in pounds?", 23, "kg", "lb"),
    ("The pool is 25 yards long. How long is it in meters?", 25, "yd", "m"),
    ("How many minutes are in 1.25 hours?", "1.25", "h", "min"),
    ("kg to lb: 12.5", "12.5", "kg", "lb"),
    ("Give me 3 gal in L.", 3, "gal", "l"),
    ("15 mm is how many inches?", 15, "mm", "in"),
    ("I have 2 days. How many minutes is that?", 2, "day", "min"),
    ("What does 1,000 ft come to in km?", 1000, "ft", "km"),
]:
    r = convert(value, frm, to)
    add("units", prompt, {"number": fmt(r)},
        [{"name": "convert_units", "arguments": {"value": float(value) if isinstance(value, str) else value, "from": frm, "to": to}}])

# ---------------------------------------------------------------- dates: weekday, between, add days; several formats
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]

def weekday(prompt, d, category="dates"):
    name = WEEKDAYS[d.weekday()]
    add(category, prompt, {"text": [name]},
        [{"name": "calendar", "arguments": {"operation": "weekday", "date": d.isoformat()}}])

def between(prompt, a, b, category="dates"):
    add(category, prompt, {"number": str((b - a).days)},
        [{"name": "calendar", "arguments": {"operation": "days_between", "date": a.isoformat(), "end_date": b.isoformat()}}])

def plus(prompt, d, n):
    add("dates", prompt, {"date": (d + timedelta(days=n)).isoformat()},
        [{"name": "calendar", "arguments": {"operation": "add_days", "date": d.isoformat(), "days": n}}])

weekday("What day was July 4, 1976?", date(1976, 7, 4))
weekday("Which day of the week is 25 December 2030?", date(2030, 12, 25))
weekday("what weekday is 2027-01-01", date(2027, 1, 1))
weekday("March 15, 2024 - what day of the week did it fall on?", date(2024, 3, 15))
weekday("Tell me the weekday for 31/10/2025 (day/month/year).", date(2025, 10, 31))
weekday("On what day of the week did 1 January 2000 fall?", date(2000, 1, 1))
weekday("My birthday is on 14 February 2026. What day is that?", date(2026, 2, 14))
weekday("Day of week for 2035-06-30?", date(2035, 6, 30))
weekday("what day is aug 9 2028", date(2028, 8, 9))
weekday("The meeting is on November 3rd, 2026. Which weekday is it?", date(2026, 11, 3))
weekday("2/29/2032 (US format) is which day of the week?", date(2032, 2, 29))
weekday("Which weekday will 2040-04-01 be?", date(2040, 4, 1))
between("How many days from January 1, 2025 to March 1, 2025?", date(2025, 1, 1), date(2025, 3, 1))
between("Number of days between 2024-02-01 and 2024-03-01?", date(2024, 2, 1), date(2024, 3, 1))
between("How many days until Christmas 2026 if today is 2026-11-20?", date(2026, 11, 20), date(2026, 12, 25))
between("How long is it in days from 10 June 2023 to 10 June 2024?", date(2023, 6, 10), date(2024, 6, 10))
between("I was born on 1990-05-17. How many days old was I on 2020-05-17?", date(1990, 5, 17), date(2020, 5, 17))
between("days between 3/1/2025 and 4/15/2025 (month/day/year)", date(2025, 3, 1), date(2025, 4, 15))
between("How many days separate 2030-01-01 and 2031-01-01?", date(2030, 1, 1), date(2031, 1, 1))
between("The project started on 2025-09-08 and ended on 2025-12-19. How many days did it last?", date(2025, 9, 8), date(2025, 12, 19))
between("From August 1st 2024 to October 31st 2024, how many days is that?", date(2024, 8, 1), date(2024, 10, 31))
between("how many days are left from 2026-07-15 to the end of 2026 (2026-12-31)?", date(2026, 7, 15), date(2026, 12, 31))
between("It's 2027-03-10 and my exam is on 2027-05-02. How many days do I have?", date(2027, 3, 10), date(2027, 5, 2))
between("Days from 1999-12-31 to 2000-03-01?", date(1999, 12, 31), date(2000, 3, 1))
plus("What's the date 30 days after June 15, 2025?", date(2025, 6, 15), 30)
plus("If today is 2026-01-20, what's the date in 100 days?", date(2026, 1, 20), 100)
plus("Which date is 45 days from 2024-12-01?", date(2024, 12, 1), 45)
plus("What date was 10 days before 2025-03-05?", date(2025, 3, 5), -10)
plus("A 90-day warranty starts on 2025-04-12. When does it end?", date(2025, 4, 12), 90)
plus("2028-02-25 plus 7 days = ?", date(2028, 2, 25), 7)
plus("I leave on 14 May 2027 for 21 days. What date do I come back?", date(2027, 5, 14), 21)
plus("What is the date 365 days after 2023-03-01?", date(2023, 3, 1), 365)
plus("go back 60 days from 2026-08-31, what date is it?", date(2026, 8, 31), -60)
plus("Two weeks after 2025-12-24 is what date? (14 days)", date(2025, 12, 24), 14)
plus("The invoice dated 2026-10-05 is due in 28 days. What's the due date?", date(2026, 10, 5), 28)
plus("What day comes 1,000 days after 2020-01-01?", date(2020, 1, 1), 1000)

# ---------------------------------------------------------------- lookups in the knowledge base
def lookup(prompt, city, attribute):
    v = KB[city][attribute]
    expect = {"text": [v]} if isinstance(v, str) else {"number": fmt(Fraction(str(v)))}
    add("lookups", prompt, expect, [{"name": "lookup", "arguments": {"entity": city, "attribute": attribute}}])

lookup("How many people live in Belmark these days?", "Belmark", "population")
lookup("Ostdor population?", "Ostdor", "population")
lookup("tell me the population of dunbrook", "Dunbrook", "population")
lookup("How high up is Corufell?", "Corufell", "elevation")
lookup("What altitude is Ulargard at?", "Ulargard", "elevation")
lookup("Varubrook - when was it founded?", "Varubrook", "founded")
lookup("What year did Tormere get founded?", "Tormere", "founded")
lookup("Which nation is Duncrest part of?", "Duncrest", "country")
lookup("Toraheim is in which country?", "Toraheim", "country")
lookup("Name the river that runs by Halholt.", "Halholt", "river")
lookup("What's the river in Brinabrook called?", "Brinabrook", "river")
lookup("How big is Normark, area-wise?", "Normark", "area")
lookup("Calowick's area in km²?", "Calowick", "area")
lookup("I'm visiting Ostburg. How many inhabitants does it have?", "Ostburg", "population")
lookup("Could you look up how old Noroburg is? I need its founding year.", "Noroburg", "founded")
lookup("elevation of Noresby??", "Noresby", "elevation")
lookup("Which country do I go to if I want to see Veligard?", "Veligard", "country")
lookup("Is there a river in Calanford? Which one?", "Calanford", "river")
for prompt, a, b, attribute, op in [
    ("If you put the people of Halvik and Dorecrest together, how many are there?", "Halvik", "Dorecrest", "population", "+"),
    ("How much higher is Halescrest than Calburg?", "Halescrest", "Calburg", "elevation", "-"),
    ("Lorbrook and Beliburg: how many residents do they have between them?", "Lorbrook", "Beliburg", "population", "+"),
    ("How many more people live in Keliheim than in Saldor?", "Keliheim", "Saldor", "population", "-"),
]:
    expression = f"{KB[a][attribute]}{op}{KB[b][attribute]}"
    add("lookups", prompt, {"number": fmt(pyeval(expression))},
        [{"name": "lookup", "arguments": {"entity": a, "attribute": attribute}},
         {"name": "lookup", "arguments": {"entity": b, "attribute": attribute}},
         {"name": "calculator", "arguments": {"expression": expression}}])
expression = f"{KB['Calbrook']['population']}/{KB['Calbrook']['area']}"
add("lookups", "Roughly how crowded is Calbrook? Give people per km².", {"number": fmt(pyeval(expression))},
    [{"name": "lookup", "arguments": {"entity": "Calbrook", "attribute": "population"}},
     {"name": "lookup", "arguments": {"entity": "Calbrook", "attribute": "area"}},
     {"name": "calculator", "arguments": {"expression": expression}}])
elev = KB["Iskvik"]["elevation"]
add("lookups", "Iskvik's elevation in feet, please.", {"number": fmt(convert(elev, "m", "ft"))},
    [{"name": "lookup", "arguments": {"entity": "Iskvik", "attribute": "elevation"}},
     {"name": "convert_units", "arguments": {"value": elev, "from": "m", "to": "ft"}}])

# ---------------------------------------------------------------- notes
for prompt, key, value in [
    ("My locker number is 4471. Please remember it.", "locker", "4471"),
    ("Keep a note: the wifi password is sunflower42", "wifi password", "sunflower42"),
    ("Can you store my parking spot? It's B-117.", "parking spot", "B-117"),
    ("save this for later - dentist appointment 2026-03-09", "dentist appointment", "2026-03-09"),
    ("Please jot down that my passport number is X8842913.", "passport number", "X8842913"),
    ("Remember for me: Anna's phone is 555-0187.", "Anna's phone", "555-0187"),
    ("Store 7731 under 'garage code'.", "garage code", "7731"),
    ("My flight is LH 4412. Don't let me forget it.", "flight", "LH 4412"),
    ("Write down my shoe size, 43.", "shoe size", "43"),
    ("note to self: buy milk and eggs", "note", "milk"),
    ("Keep in mind that the meeting room is 3.14.", "meeting room", "3.14"),
    ("Memorize my bike lock combo: 0 9 2 6", "bike lock", "0 9 2 6"),
]:
    add("notes", prompt, {"text": [value], "tool": "memory"},
        [{"name": "memory", "arguments": {"action": "write", "key": key, "value": value}}])

# ---------------------------------------------------------------- typos, case and spacing (answers as above, wording noisy)
for prompt, expression in [
    ("waht is 15 tims 4?", "15*4"),
    ("WHAT IS 250 DIVIDED BY 8 PLEASE", "250/8"),
    ("whats   17+  26", "17+26"),
    ("  12*12  ", "12*12"),
    ("calcualte 345 + 678", "345+678"),
    ("multply 19 by 21", "19*21"),
    ("wat's 2 to teh power of 8", "2^8"),
    ("sqaure root of 169?", "sqrt(169)"),
    ("15 percnt of 200", "15%*200"),
    ("substract 45 from 300", "300-45"),
    ("Wht is 1,024 / 16", "1024/16"),
    ("what is 3+4", "3+4"),
    ("What Is Eight Times Nine? (8*9)", "8*9"),
    ("pls add 0.75 and 1.6", "0.75+1.6"),
    ("hw much is 99*99", "99*99"),
]:
    calc("typos", prompt, expression)
for prompt, value, frm, to in [
    ("convret 10 kg to pounds", 10, "kg", "lb"),
    ("how many kilometres in 3 mils", 3, "mi", "km"),
    ("CONVERT 100 F TO C", 100, "F", "C"),
    ("20 cm in inchs?", 20, "cm", "in"),
    ("galons in 10 liters?", 10, "l", "gal"),
]:
    add("typos", prompt, {"number": fmt(convert(value, frm, to))},
        [{"name": "convert_units", "arguments": {"value": value, "from": frm, "to": to}}])
between("hw many days btwn 2024-01-01 and 2024-03-01", date(2024, 1, 1), date(2024, 3, 1), "typos")
weekday("wat day of teh week is 2025-07-04", date(2025, 7, 4), "typos")

# ---------------------------------------------------------------- plain chat: short, truthful, no tools
NO_NUMBERS = ["4711"]
for prompt, expect in [
    ("Hello! Who are you?", {"any": ["k2-nano", "Kimi"], "max_chars": 400, "no_tools": True}),
    ("hey there", {"any": ["hello", "hi", "hey"], "max_chars": 300, "no_tools": True}),
    ("What's your name?", {"any": ["k2-nano", "Kimi"], "max_chars": 300, "no_tools": True}),
    ("What kinds of things can you help me with?", {"all_any": [["calculat", "arithmetic", "math"], ["convert", "unit"], ["date", "calendar"]], "max_chars": 500, "no_tools": True}),
    ("Which tools are you able to use?", {"text": ["calculator", "convert_units", "calendar", "lookup", "memory"], "max_chars": 500, "no_tools": True}),
    ("Thanks a lot, that was helpful!", {"any": ["welcome", "glad", "happy", "pleasure"], "max_chars": 200, "no_tools": True}),
    ("Good night!", {"any": ["night", "bye", "goodbye"], "max_chars": 200, "no_tools": True}),
    ("Can you book me a flight to Paris?", {"any": ["can't", "cannot", "can not", "unable", "not able", "don't"], "max_chars": 400, "no_tools": True}),
    ("What's the weather like in London right now?", {"any": ["can't", "cannot", "can not", "unable", "not able", "don't", "no access"], "max_chars": 400, "no_tools": True, "none": ["°", "degrees"]}),
    ("Send an email to my boss saying I'm late.", {"any": ["can't", "cannot", "can not", "unable", "not able", "don't"], "max_chars": 400, "no_tools": True}),
    ("Who won the football world cup in 2022?", {"any": ["don't know", "do not know", "can't", "cannot", "not sure", "no way", "unable", "don't have"], "max_chars": 400, "no_tools": True}),
    ("Are you a human?", {"any": ["model", "AI", "assistant", "not a human", "not human"], "max_chars": 300, "no_tools": True}),
    ("Good afternoon, how are you doing?", {"any": ["good", "well", "fine", "great", "hello", "hi"], "max_chars": 300, "no_tools": True, "none": ["morning", "night", "evening"]}),
    ("ok bye", {"any": ["bye", "goodbye", "see you"], "max_chars": 200, "no_tools": True}),
    ("Can you browse the internet?", {"any": ["can't", "cannot", "can not", "no", "unable", "not able", "don't"], "max_chars": 400, "no_tools": True}),
    ("Write me a poem about the sea.", {"max_chars": 600, "no_tools": True}),
    ("Who made you?", {"any": ["KimiSharp", "Kimi"], "max_chars": 300, "no_tools": True}),
    ("Do you remember what we talked about yesterday?", {"any": ["don't", "do not", "can't", "cannot", "no"], "max_chars": 300, "no_tools": True}),
]:
    expect.setdefault("none", [])
    expect["none"] = expect["none"] + NO_NUMBERS
    add("chat", prompt, expect)

with open(os.path.join(HERE, "natural.jsonl"), "w", encoding="utf-8") as f:
    for item in items:
        f.write(json.dumps(item, ensure_ascii=False) + "\n")
from collections import Counter
print(len(items), dict(Counter(i["category"] for i in items)))
